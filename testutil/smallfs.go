package testutil

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// SmallFS mounts a tmpfs of size bytes on dir (created if needed), for
// tests of a full disk, and unmounts it at cleanup (after the cleanups
// registered later, such as a store's close). It needs root and fails the
// test without it.
func SmallFS(t testing.TB, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mounting a small filesystem needs root")
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0711", size)); err != nil {
		t.Fatalf("mount a tmpfs of %d bytes on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		// A store's cleanup may have unmounted everything under its root.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// FreeBytes returns the bytes available to unprivileged users on the
// filesystem of path.
func FreeBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	unit := st.Frsize // block counts are in fragment-size units
	if unit == 0 {
		unit = st.Bsize
	}
	return int64(st.Bavail) * unit
}
