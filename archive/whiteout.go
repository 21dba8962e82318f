package archive

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// whiteout carries out ".wh.NAME" and ".wh..wh..opq" (see WhiteoutMode).
// Whiteouts only hide what lower layers made, never this layer's entries.
func (a *applier) whiteout(orig, dir, base string) error {
	if base == whiteoutOpaque {
		if a.opts.Whiteouts == WhiteoutNative {
			return a.opaqueNative(orig, dir)
		}
		fd, err := a.root.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOENT) {
			d, derr := a.root.dir(dir, true)
			if derr != nil {
				return fmt.Errorf("archive: opaque whiteout %q: %w", orig, derr)
			}
			a.root.release(d)
			fd, err = a.root.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		}
		if err != nil {
			return fmt.Errorf("archive: opaque whiteout %q: %w", orig, err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, a.opts.OverlayXattrPrefix+"opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("archive: opaque whiteout %q: %w", orig, err)
		}
		a.opaque[dir] = struct{}{}
		// Whiteouts inside an opaque directory hide nothing more, and
		// overlayfs lists them in a directory it does not merge (where
		// lookups then fail): drop the ones this layer made there.
		for w := range a.whiteouts {
			if path.Dir(w) == dir || (dir == "" && !strings.Contains(w, "/")) {
				if err := unix.Unlinkat(fd, path.Base(w), 0); err != nil && !errors.Is(err, unix.ENOENT) {
					return fmt.Errorf("archive: opaque whiteout %q: %w", orig, err)
				}
				delete(a.whiteouts, w)
			}
		}
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." || strings.HasPrefix(victim, whiteoutPrefix) {
		return fmt.Errorf("archive: whiteout %q names no valid entry: %w", orig, errdefs.ErrInvalidArgument)
	}
	full := path.Join(dir, victim)
	if _, ok := a.created[full]; ok {
		return nil
	}
	if a.opts.Whiteouts == WhiteoutOverlay {
		if _, ok := a.opaque[dir]; ok {
			return nil // the opaque directory hides it already
		}
		if len(a.opts.Parents) > 0 && !visibleInLayers(a.opts.Parents, full, a.opts.OverlayXattrPrefix) {
			return nil
		}
	}
	pd, err := a.root.dir(dir, a.opts.Whiteouts == WhiteoutOverlay)
	if err != nil {
		if a.opts.Whiteouts == WhiteoutNative && errors.Is(err, unix.ENOENT) {
			return nil // nothing there to hide
		}
		return fmt.Errorf("archive: whiteout %q: %w", orig, err)
	}
	defer a.root.release(pd)
	pfd := pd.fd
	var st unix.Stat_t
	wasDir := unix.Fstatat(pfd, victim, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	if err := removeAllAt(pfd, victim); err != nil {
		return fmt.Errorf("archive: whiteout %q: %w", orig, err)
	}
	a.root.forget(full)
	if wasDir {
		a.removedDir(full)
	}
	if a.opts.Whiteouts == WhiteoutOverlay {
		if err := unix.Mknodat(pfd, victim, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("archive: whiteout %q: %w", orig, err)
		}
		a.whiteouts[full] = struct{}{}
	}
	return nil
}

// opaqueNative empties dir of everything this layer did not make.
func (a *applier) opaqueNative(orig, dir string) error {
	fd, err := a.root.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: opaque whiteout %q: %w", orig, err)
	}
	defer unix.Close(fd)
	err = removeChildren(fd, func(child string) bool {
		_, ok := a.created[path.Join(dir, child)]
		return ok
	})
	if err != nil {
		return fmt.Errorf("archive: opaque whiteout %q: %w", orig, err)
	}
	a.root.forget(dir)
	return nil
}
