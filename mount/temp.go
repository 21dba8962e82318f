package mount

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WithTempMount mounts mounts on a new temporary directory, calls fn with
// it, and unmounts and removes the directory however fn ends: returning an
// error, returning nil, or panicking (the panic continues after the
// unmount). The error of fn comes first; an unmount failure is returned
// when fn succeeded.
func WithTempMount(ctx context.Context, mounts []Mount, fn func(root string) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "strata-mount-")
	if err != nil {
		return fmt.Errorf("temporary mount point: %w", err)
	}
	if err := All(mounts, dir); err != nil {
		os.Remove(dir)
		return err
	}
	defer func() {
		uerr := UnmountAll(dir, 0)
		if uerr != nil {
			// Something still holds it open; detach so the directory
			// can go and the mount disappears once it is released.
			if derr := UnmountAll(dir, unix.MNT_DETACH); derr == nil {
				uerr = nil
			} else {
				uerr = errors.Join(uerr, derr)
			}
		}
		if uerr == nil {
			uerr = os.Remove(dir)
		}
		if err == nil && uerr != nil {
			err = fmt.Errorf("temporary mount %s: %w", dir, uerr)
		}
	}()
	return fn(dir)
}
