package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// resolveInRoot makes the kernel resolve every path as if the root were "/":
// ".." stops at the root, absolute symlinks and symlinks climbing out land
// inside it, /proc magic links and mount crossings are refused. That is the
// whole confinement argument: no path we open can name anything outside.
const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// maxCachedDirs bounds the directory descriptors the cache keeps open when
// nobody uses them. Tests make it small to exercise eviction with small
// layers.
var maxCachedDirs = 128

// dirRef is a directory descriptor lent by a root. It stays open while it
// is pinned, whatever happens to the cache: a descriptor closed under its
// user could be reused by another goroutine for a directory outside the
// root (issue 11). Every dirRef returned by root.dir is pinned once and
// must be given back with root.release.
type dirRef struct {
	fd int
	// setgid says the directory has the setgid bit: files made in it take
	// the directory's group, so their owner must be set.
	setgid bool
	pins   int  // guarded by root.mu
	cached bool // in root.dirs (or the root itself); else closed at the last release
}

// root is a directory tree that entries are applied into. All access goes
// through descriptors opened with openat2(RESOLVE_IN_ROOT) and *at system
// calls on a single final component, which is never followed.
//
// Directory descriptors are cached by relative path and lent pinned: the
// cache evicts what it holds when full and drops what was removed
// (forget), but closes a descriptor only once nobody holds it. Pinning
// rather than evicting between entries, because small files are written
// by workers that hold their parent's descriptor across many entries, and
// rather than dup, which would cost two system calls per entry.
type root struct {
	fd  int
	top *dirRef // the root itself, open until close

	mu   sync.Mutex
	dirs map[string]*dirRef // relative path → O_PATH descriptor of that directory
	// made records the directories dir created for missing parents.
	made map[string]struct{}
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("archive: open root %s: %w", dir, err)
	}
	r := &root{fd: fd, top: &dirRef{fd: fd, cached: true}, dirs: map[string]*dirRef{}, made: map[string]struct{}{}}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
		r.top.setgid = true
	}
	return r, nil
}

// close closes the root and the cached descriptors. Nothing may hold one.
func (r *root) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.dirs {
		d.cached = false
		if d.pins == 0 {
			unix.Close(d.fd)
		}
	}
	r.dirs = nil
	unix.Close(r.fd)
}

// pin takes one more hold of d, for another user (a worker).
func (r *root) pin(d *dirRef) {
	r.mu.Lock()
	d.pins++
	r.mu.Unlock()
}

// release gives back one hold of d; the last one closes a descriptor the
// cache no longer has.
func (r *root) release(d *dirRef) {
	r.mu.Lock()
	d.pins--
	if d.pins == 0 && !d.cached {
		unix.Close(d.fd)
	}
	r.mu.Unlock()
}

// uncache removes d from the cache (r.mu held), closing it unless held.
func (r *root) uncache(rel string, d *dirRef) {
	delete(r.dirs, rel)
	d.cached = false
	if d.pins == 0 {
		unix.Close(d.fd)
	}
}

// forget drops cached descriptors of rel and everything below it: the
// directory was removed or replaced. Held descriptors stay open until
// released.
func (r *root) forget(rel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, d := range r.dirs {
		if rel == "" || k == rel || strings.HasPrefix(k, rel+"/") {
			r.uncache(k, d)
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

// dir returns directory rel, pinned (see release), creating missing
// directories (mode 0755) when create is set. A non-directory in the way
// is an error.
func (r *root) dir(rel string, create bool) (*dirRef, error) {
	if rel == "" {
		r.pin(r.top)
		return r.top, nil
	}
	r.mu.Lock()
	if d, ok := r.dirs[rel]; ok {
		d.pins++
		r.mu.Unlock()
		return d, nil
	}
	r.mu.Unlock()
	fd, err := r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) && create {
		parent, base := path.Split(rel)
		pd, perr := r.dir(strings.TrimSuffix(parent, "/"), true)
		if perr != nil {
			return nil, perr
		}
		err = unix.Mkdirat(pd.fd, base, 0o755)
		r.release(pd)
		if err == nil {
			r.made[rel] = struct{}{}
		} else if !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "mkdir", Path: rel, Err: err}
		}
		fd, err = r.openIn(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open directory", Path: rel, Err: err}
	}
	d := &dirRef{fd: fd, pins: 1, cached: true}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
		d.setgid = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dirs) >= maxCachedDirs {
		for k, old := range r.dirs {
			r.uncache(k, old)
		}
	}
	r.dirs[rel] = d
	return d, nil
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
