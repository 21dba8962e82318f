package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveInRoot makes the kernel resolve every path as if the root were "/":
// ".." stops at the root, absolute symlinks and symlinks climbing out land
// inside it, /proc magic links and mount crossings are refused. That is the
// whole confinement argument: no path we open can name anything outside.
const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// maxCachedDirs bounds the parent-directory descriptors kept open.
const maxCachedDirs = 128

// root is a directory tree that entries are applied into. All access goes
// through descriptors opened with openat2(RESOLVE_IN_ROOT) and *at system
// calls on a single final component, which is never followed.
type root struct {
	fd   int
	dirs map[string]int // relative path → O_PATH descriptor of that directory
	// setgid records cached directories with the setgid bit: files made in
	// them take the directory's group, so their owner must be set.
	setgid map[int]bool
	// made records the directories dir created for missing parents.
	made map[string]struct{}
	// beforeEvict runs before cached descriptors are closed to make room:
	// the applier waits there for workers that still use them.
	beforeEvict func()
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("archive: open root %s: %w", dir, err)
	}
	r := &root{fd: fd, dirs: map[string]int{}, setgid: map[int]bool{}, made: map[string]struct{}{}}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
		r.setgid[fd] = true
	}
	return r, nil
}

func (r *root) close() {
	for _, fd := range r.dirs {
		unix.Close(fd)
	}
	r.dirs = nil
	unix.Close(r.fd)
}

// forget drops cached descriptors of rel and everything below it: the
// directory was removed or replaced.
func (r *root) forget(rel string) {
	for k, fd := range r.dirs {
		if rel == "" || k == rel || strings.HasPrefix(k, rel+"/") {
			unix.Close(fd)
			delete(r.dirs, k)
			delete(r.setgid, fd)
		}
	}
}

// openIn opens rel inside the root with flags.
func (r *root) openIn(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveInRoot})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // openat2 asks for a retry when a rename raced the lookup
		}
		return fd, err
	}
}

// dir returns a descriptor of directory rel, creating missing directories
// (mode 0755) when create is set. A non-directory in the way is an error.
func (r *root) dir(rel string, create bool) (int, error) {
	if rel == "" {
		return r.fd, nil
	}
	if fd, ok := r.dirs[rel]; ok {
		return fd, nil
	}
	fd, err := r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) && create {
		parent, base := path.Split(rel)
		pfd, perr := r.dir(strings.TrimSuffix(parent, "/"), true)
		if perr != nil {
			return -1, perr
		}
		if err := unix.Mkdirat(pfd, base, 0o755); err == nil {
			r.made[rel] = struct{}{}
		} else if !errors.Is(err, unix.EEXIST) {
			return -1, &os.PathError{Op: "mkdir", Path: rel, Err: err}
		}
		fd, err = r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open directory", Path: rel, Err: err}
	}
	if len(r.dirs) >= maxCachedDirs {
		if r.beforeEvict != nil {
			r.beforeEvict()
		}
		r.forget("")
	}
	r.dirs[rel] = fd
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
		r.setgid[fd] = true
	}
	return fd, nil
}

// removeAllAt removes name in directory dirfd, recursively, never following
// symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	err = removeChildren(fd, nil)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// removeChildren removes every entry of the open directory fd for which keep
// (when not nil) returns false.
func removeChildren(fd int, keep func(name string) bool) error {
	d := os.NewFile(uintptr(dupFd(fd)), "dir")
	if d == nil {
		return fmt.Errorf("dup directory descriptor")
	}
	defer d.Close()
	// All names first: deleting while reading could skip entries.
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

func dupFd(fd int) int {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return nfd
}
