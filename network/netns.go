package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// newNetNS makes a network namespace and keeps it by bind-mounting it on
// path (a new empty file), as `ip netns add`, podman and nerdctl do, so it
// outlives every process in it. It is made on a locked thread, which then
// goes back to the namespace it had before it runs anything else; a thread
// that cannot go back stays locked, so it ends with its goroutine (or, if
// it is the main thread, which Go never ends, is never used again) — a
// thread in a container's namespace must never run other goroutines. The
// main thread is why going back matters: Go keeps it, wedged, and
// /proc/<pid>/ns/net (the main thread's) would name the container's
// namespace for the rest of the process.
func newNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		orig, err := os.Open(self)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // unshare failed: still the old namespace
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		err = unix.Mount(self, path, "", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mount network namespace on %s: %w", path, err)
		}
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// removeNetNS unmounts and removes a namespace made by newNetNS; the
// namespace itself goes when no process is left in it. A path that is
// gone already is no error.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether path has a network namespace mounted on it.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
