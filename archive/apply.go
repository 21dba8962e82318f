package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// WhiteoutMode says how a layer's whiteouts are carried out.
type WhiteoutMode int

const (
	// WhiteoutOverlay writes whiteouts the way overlayfs reads them in an
	// upper or lower directory: ".wh.NAME" becomes a 0/0 character device
	// NAME and ".wh..wh..opq" the opaque xattr on its directory. The layer
	// is applied into an empty directory, without mounting anything.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutNative carries them out on a full copy of the lower layers:
	// ".wh.NAME" removes NAME, ".wh..wh..opq" empties its directory of what
	// the lower layers put there.
	WhiteoutNative
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Limits bound what a hostile layer can make the applier do.
type Limits struct {
	MaxEntries   int // tar entries in one layer
	MaxPathLen   int // bytes in an entry's name or link target
	MaxXattrs    int // extended attributes on one entry
	MaxXattrSize int // bytes in one extended attribute's value
}

// DefaultLimits are generous for real images and fatal for bombs.
var DefaultLimits = Limits{MaxEntries: 4 << 20, MaxPathLen: 4096, MaxXattrs: 128, MaxXattrSize: 64 << 10}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	Whiteouts WhiteoutMode
	// OverlayXattrPrefix is "trusted.overlay." (the default) or
	// "user.overlay." for overlay mounted with userxattr.
	OverlayXattrPrefix string
	// Parents are the directories of the layers below, newest first
	// (overlay mode). With them, a whiteout for something no parent shows
	// is not written: it would hide nothing, and overlayfs lists such
	// whiteouts in directories it does not merge.
	Parents []string
	// DeferLowerLinks is for a layer applied in overlay mode before its
	// parents exist (no Parents): a hard link to a name neither the layer
	// nor the whiteouts it made so far show is listed in
	// ApplyResult.LowerLinks, for LinkLowers once the parents are there,
	// instead of failing. A caller that sets it must call LinkLowers.
	DeferLowerLinks bool
	// Unprivileged skips device nodes and ownership, as a non-root user
	// must; by default it is set when the process is not root.
	Unprivileged bool
	Limits       Limits
}

// ApplyResult is what Apply learned of the layer.
type ApplyResult struct {
	// DiffID is the digest of the uncompressed tar stream.
	DiffID digest.Digest
	// Size is the length of the uncompressed tar stream.
	Size        int64
	Compression Compression
	Entries     int
	// SkippedDevices counts device nodes not created for lack of privilege.
	SkippedDevices int
	// Whiteouts lists the whiteout devices written in overlay mode, for
	// PruneWhiteouts when the layer was applied before its parents existed.
	Whiteouts []string
	// LowerLinks lists, in order, the hard links to names not in the
	// layer that ApplyOptions.DeferLowerLinks deferred: for LinkLowers.
	LowerLinks []HardLink
	// ImplicitDirs lists the directories made for entries whose parents
	// the layer did not list, with default attributes, for InheritDirs
	// when the layer was applied before its parents existed.
	ImplicitDirs []string
}

// HardLink is a hard link entry: Name links to Target, both relative to
// the root.
type HardLink struct {
	Name, Target string
}

// ErrEscape is returned for entries that try to reach outside the root in a
// way that cannot be neutralised (a hard link to outside, for one).
var ErrEscape = errors.New("archive: path escapes root")

// Apply unpacks the layer stream r (gzip, zstd or plain tar) into dir and
// returns its diff ID. Every path is resolved inside dir by the kernel as if
// dir were "/", so no entry can create, change or remove anything outside
// it, whatever links it or earlier entries made. Memory use does not grow
// with the size of the layer.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (ApplyResult, error) {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	if opts.OverlayXattrPrefix == "" {
		opts.OverlayXattrPrefix = "trusted.overlay."
	}
	if os.Geteuid() != 0 {
		opts.Unprivileged = true
	}
	var res ApplyResult
	rc, comp, err := DecompressStream(r)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	res.Compression = comp
	ahead := newAheadReader(rc)
	defer ahead.close()

	rt, err := openRoot(dir)
	if err != nil {
		return res, err
	}
	defer rt.close()
	a := &applier{ctx: ctx, dir: dir, root: rt, opts: opts, created: map[string]struct{}{}, copied: map[string]struct{}{}, deferred: map[string]int{}, fresh: map[string]struct{}{}, opaque: map[string]struct{}{}, whiteouts: map[string]struct{}{},
		buf: make([]byte, 1<<20), inflight: map[string]struct{}{}, bufs: smallBufs{free: make(chan *[]byte, maxSmallBufs)}, euid: os.Geteuid(), egid: os.Getegid(), umask: processUmask()}
	defer a.stopWorkers()
	tr := tar.NewReader(ahead)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("archive: read tar entry %d: %v: %w", res.Entries+1, err, errdefs.ErrInvalidArgument)
		}
		res.Entries++
		if res.Entries > opts.Limits.MaxEntries {
			return res, fmt.Errorf("archive: layer has more than %d entries: %w", opts.Limits.MaxEntries, errdefs.ErrInvalidArgument)
		}
		if err := a.entry(hdr, tr); err != nil {
			return res, err
		}
	}
	if err := a.stopWorkers(); err != nil {
		return res, err
	}
	if err := a.finishDirs(); err != nil {
		return res, err
	}
	res.SkippedDevices = a.skippedDevices
	for _, l := range a.lowerLinks {
		if l.Name != "" {
			res.LowerLinks = append(res.LowerLinks, l)
		}
	}
	for w := range a.whiteouts {
		res.Whiteouts = append(res.Whiteouts, w)
	}
	for d := range a.root.made {
		if _, explicit := a.created[d]; !explicit {
			res.ImplicitDirs = append(res.ImplicitDirs, d)
		}
	}
	res.DiffID, res.Size, err = ahead.finish()
	if err != nil {
		return res, fmt.Errorf("archive: read layer: %w", err)
	}
	return res, nil
}

// dirTimes is what a directory gets once its children exist: its times,
// and its mode (a read-only directory would refuse them to a non-root user).
type dirTimes struct {
	name         string
	atime, mtime time.Time
	mode         uint32
}

type applier struct {
	ctx            context.Context
	dir            string // the root's path, for finding names in it and Parents alike
	root           *root
	opts           ApplyOptions
	created        map[string]struct{} // names this layer made: whiteouts spare them
	copied         map[string]struct{} // names copied up from Parents for hard links
	lowerLinks     []HardLink          // deferred (ApplyOptions.DeferLowerLinks); Name "" when replaced
	deferred       map[string]int      // name → index in lowerLinks
	fresh          map[string]struct{} // directories this layer made (mkdir succeeded)
	opaque         map[string]struct{} // directories this layer made opaque (overlay mode)
	whiteouts      map[string]struct{} // whiteout devices this layer made (overlay mode)
	dirs           []dirTimes
	buf            []byte
	skippedDevices int

	euid, egid int
	umask      uint32

	// Small files in flight to the workers.
	bufs     smallBufs
	jobs     chan []fileJob
	batch    []fileJob // small files not yet handed over
	pending  sync.WaitGroup
	inflight map[string]struct{}
	errMu    sync.Mutex
	werr     error
}

// cleanName turns an entry name into a path relative to the root: leading
// "/" and every ".." that would climb above the root are dropped, as GNU tar
// and containerd do. "" is the root itself.
func cleanName(name string) string {
	if isClean(name) {
		return name // the common case, without allocating
	}
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// isClean reports whether name is relative and has no empty, "." or ".."
// component.
func isClean(name string) bool {
	if name == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		switch name[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) error {
	lim := a.opts.Limits
	if len(hdr.Name) > lim.MaxPathLen || len(hdr.Linkname) > lim.MaxPathLen {
		return fmt.Errorf("archive: entry %.64q…: name or link target longer than %d bytes: %w", hdr.Name, lim.MaxPathLen, errdefs.ErrInvalidArgument)
	}
	name := cleanName(hdr.Name)
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")

	// Files are written by workers (see dispatch). Anything that could
	// touch what a worker is writing waits for them first: whiteouts,
	// replacements, hard links, and a second entry for a name in flight.
	if strings.HasPrefix(base, whiteoutPrefix) || hdr.Typeflag == tar.TypeLink {
		if err := a.barrier(); err != nil {
			return err
		}
	}
	if _, ok := a.inflight[name]; ok {
		if err := a.barrier(); err != nil {
			return err
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr.Name, dir, base)
	}
	if name == "" {
		// The root itself: only its attributes can change.
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("archive: entry %q replaces the root with a non-directory: %w", hdr.Name, errdefs.ErrInvalidArgument)
		}
		return a.attributes(hdr, a.root.fd, "", "")
	}
	pd, err := a.root.dir(dir, true)
	if err != nil {
		return fmt.Errorf("archive: entry %q: %w", hdr.Name, err)
	}
	defer a.root.release(pd)
	pfd := pd.fd
	// Whatever is at name goes, unless a directory meets a directory. In a
	// directory this layer made, only this layer's names can exist.
	var st unix.Stat_t
	_, seen := a.created[name]
	_, implicit := a.root.made[name]
	_, freshDir := a.fresh[dir]
	if _, made := a.root.made[dir]; made {
		freshDir = true
	}
	if _, copied := a.copied[name]; !freshDir || seen || implicit || copied {
		err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	} else {
		err = unix.ENOENT
	}
	if err == nil {
		if !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			if err := a.barrier(); err != nil {
				return err
			}
			if err := removeAllAt(pfd, base); err != nil {
				return fmt.Errorf("archive: entry %q: replace existing: %w", hdr.Name, err)
			}
			a.root.forget(name)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				a.removedDir(name)
			}
		}
	}
	a.created[name] = struct{}{}
	delete(a.whiteouts, name)
	if i, ok := a.deferred[name]; ok {
		// A later entry replaces a deferred link.
		a.lowerLinks[i] = HardLink{}
		delete(a.deferred, name)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err == nil {
			a.fresh[name] = struct{}{}
		} else if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("archive: mkdir %q: %w", hdr.Name, err)
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return a.regular(hdr, tr, pd, name, base)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("archive: symlink %q: %w", hdr.Name, err)
		}
	case tar.TypeLink:
		target := cleanName(hdr.Linkname)
		if target == "" {
			return fmt.Errorf("archive: hard link %q to the root: %w", hdr.Name, ErrEscape)
		}
		if _, ok := a.whiteouts[target]; ok {
			// A whiteout device, not the file the name had.
			return fmt.Errorf("archive: hard link %q to %q: the layer removed it: %w", hdr.Name, hdr.Linkname, errdefs.ErrNotFound)
		}
		err := a.link(target, pfd, base)
		if errors.Is(err, unix.ENOENT) && a.opts.Whiteouts == WhiteoutOverlay {
			switch {
			case len(a.opts.Parents) > 0:
				// Only a parent layer has the target: copy it up into
				// this layer's directory, as overlayfs would before
				// linking.
				if cerr := a.copyUp(target); cerr != nil {
					return fmt.Errorf("archive: hard link %q to %q: %w", hdr.Name, hdr.Linkname, cerr)
				}
				err = a.link(target, pfd, base)
			case a.opts.DeferLowerLinks:
				if i, ok := a.deferred[target]; ok {
					// A link to a link deferred itself: the same parent
					// file, which a later entry may replace at target.
					a.deferred[name] = len(a.lowerLinks)
					a.lowerLinks = append(a.lowerLinks, HardLink{Name: name, Target: a.lowerLinks[i].Target})
					return nil
				}
				if hidden, _ := upperState(a.dir, target, a.opts.OverlayXattrPrefix); !hidden {
					a.deferred[name] = len(a.lowerLinks)
					a.lowerLinks = append(a.lowerLinks, HardLink{Name: name, Target: target})
					return nil
				}
			}
		}
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("archive: hard link %q to %q: target not in the layer: %w", hdr.Name, hdr.Linkname, err)
		}
		if err != nil {
			return fmt.Errorf("archive: hard link %q to %q: %w", hdr.Name, hdr.Linkname, err)
		}
		return nil // a link shares its target's attributes
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		if mode != unix.S_IFIFO && a.opts.Unprivileged {
			a.skippedDevices++
			delete(a.created, name)
			return nil
		}
		if err := unix.Mknodat(pfd, base, mode|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return fmt.Errorf("archive: mknod %q: %w", hdr.Name, err)
		}
	case tar.TypeXGlobalHeader:
		delete(a.created, name)
		return nil
	default:
		return fmt.Errorf("archive: entry %q: unsupported type %q: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
	return a.attributes(hdr, pfd, base, name)
}

// removedDir forgets that this layer made directory name and those below
// it: they are gone, and a later entry may see something else at that
// path (a symlink to another directory, whose entries the layer did not
// all make), so names there must be looked at again, not assumed free.
func (a *applier) removedDir(name string) {
	prefix := name + "/"
	for d := range a.fresh {
		if d == name || strings.HasPrefix(d, prefix) {
			delete(a.fresh, d)
		}
	}
	for d := range a.root.made {
		if d == name || strings.HasPrefix(d, prefix) {
			delete(a.root.made, d)
		}
	}
	// Deferred hard links below it went with it.
	for n, i := range a.deferred {
		if strings.HasPrefix(n, prefix) {
			a.lowerLinks[i] = HardLink{}
			delete(a.deferred, n)
		}
	}
}

// link makes the hard link base in directory pfd to target, which must be
// in the root.
func (a *applier) link(target string, pfd int, base string) error {
	tdir, tbase := path.Split(target)
	td, err := a.root.dir(strings.TrimSuffix(tdir, "/"), false)
	if err != nil {
		return err
	}
	defer a.root.release(td)
	// linkat without AT_SYMLINK_FOLLOW links the name itself, never
	// what a symlink there points at.
	return unix.Linkat(td.fd, tbase, pfd, base, 0)
}

// copyUp copies target from the parent layer that shows it into the
// layer's directory, with its content, mode, owner, xattrs and times, the
// way overlayfs copies a lower file up before linking it: the mounted
// stack then shows what a native apply gives, a target that the link
// shares. It returns errdefs.ErrNotFound when neither the layer nor its
// parents show target (hidden by a whiteout or an opaque directory, or
// reached only through a symlink), errdefs.ErrInvalidArgument when it is a
// directory.
func (a *applier) copyUp(target string) error {
	return a.copyUpTo(target, target)
}

// copyUpTo copies target as copyUp does, to dest: target itself, found
// through the layer and its parents, or another name (see LinkLowers),
// found through the parents alone.
func (a *applier) copyUpTo(target, dest string) error {
	layers := append([]string{a.dir}, a.opts.Parents...)
	if dest != target {
		layers = layers[1:]
	}
	i := showingLayer(layers, target, a.opts.OverlayXattrPrefix)
	if i < 0 || dest == target && i == 0 {
		// Not found, or found in this layer: the link failed for
		// another reason than a missing target.
		return fmt.Errorf("copy up %q: not in the layer or its parents: %w", target, errdefs.ErrNotFound)
	}
	tdir, tbase := path.Split(target)
	tdir = strings.TrimSuffix(tdir, "/")
	ddir, dbase := path.Split(dest)
	ddir = strings.TrimSuffix(ddir, "/")
	lfd, err := unix.Open(layers[i], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy up %q: open parent layer %s: %w", target, layers[i], err)
	}
	defer unix.Close(lfd)
	// showingLayer saw every component as a directory; refuse symlinks
	// all the same.
	rel := tdir
	if rel == "" {
		rel = "."
	}
	spd, err := unix.Openat2(lfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	defer unix.Close(spd)
	var st unix.Stat_t
	if err := unix.Fstatat(spd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	pd, err := a.root.dir(ddir, true)
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	defer a.root.release(pd)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = copyFileAt(spd, tbase, pd.fd, dbase)
	case unix.S_IFLNK:
		var l string
		if l, err = readlinkAt(spd, tbase); err == nil {
			err = unix.Symlinkat(l, pd.fd, dbase)
		}
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if st.Mode&unix.S_IFMT != unix.S_IFIFO && a.opts.Unprivileged {
			return fmt.Errorf("copy up device %q: not privileged: %w", target, errdefs.ErrNotImplemented)
		}
		err = unix.Mknodat(pd.fd, dbase, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	default:
		return fmt.Errorf("copy up %q: a hard link to a %s: %w", target, fileType(st.Mode), errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	a.copied[dest] = struct{}{}
	if !a.opts.Unprivileged {
		if err := unix.Fchownat(pd.fd, dbase, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("copy up %q: chown: %w", target, err)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// After chown, which clears setuid and setgid. The node is ours
		// and no symlink, so fchmodat following it is harmless.
		if err := unix.Fchmodat(pd.fd, dbase, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("copy up %q: chmod: %w", target, err)
		}
	}
	xs, err := listXattrs(fmt.Sprintf("/proc/self/fd/%d/%s", spd, tbase))
	if err != nil {
		return fmt.Errorf("copy up %q: list xattrs: %w", target, err)
	}
	for k, v := range xs {
		if err := unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", pd.fd, dbase), k, []byte(v), 0); err != nil {
			if a.opts.Unprivileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue
			}
			return fmt.Errorf("copy up %q: set xattr %q: %w", target, k, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(pd.fd, dbase, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up %q: set times: %w", target, err)
	}
	return nil
}

// copyFileAt copies the regular file name in directory from to a new file
// toName in directory to (copy_file_range: a reflink or an in-kernel copy
// where the file system can).
func copyFileAt(from int, name string, to int, toName string) error {
	in, err := unix.Openat(from, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(in), name)
	defer src.Close()
	out, err := unix.Openat(to, toName, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(out), toName)
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// readlinkAt reads the symlink name in directory dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %o", mode&unix.S_IFMT)
}

// smallFile is the largest file handed to a worker whole; larger ones are
// streamed by the reading goroutine.
const smallFile = 256 << 10

// fileJob is a small file for a worker to create.
type fileJob struct {
	hdr  *tar.Header
	dir  *dirRef // pinned for the job
	base string
	buf  *[]byte
	data []byte
}

// smallBufs bounds the small-file buffers of one Apply: a sync.Pool would
// be emptied by every collection and refilled with fresh 256 KiB buffers,
// which then cause the next collection.
type smallBufs struct {
	free chan *[]byte
	made int
}

const maxSmallBufs = 24

func (p *smallBufs) get() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.made < maxSmallBufs {
		p.made++
		b := make([]byte, smallFile)
		return &b
	}
	return <-p.free
}

func (p *smallBufs) put(b *[]byte) { p.free <- b }

// regular writes a file: small ones by a worker, while this goroutine reads
// on (file creation is the cost of layers of many small files, and both
// cores can do it); large ones here, keeping runs of zeros as holes.
func (a *applier) regular(hdr *tar.Header, tr io.Reader, pd *dirRef, name, base string) error {
	if hdr.Size <= smallFile {
		buf := a.bufs.get()
		data := (*buf)[:hdr.Size]
		if _, err := io.ReadFull(tr, data); err != nil {
			a.bufs.put(buf)
			return fmt.Errorf("archive: read %q: %v: %w", hdr.Name, err, errdefs.ErrInvalidArgument)
		}
		a.inflight[name] = struct{}{}
		a.root.pin(pd)
		return a.dispatch(fileJob{hdr: hdr, dir: pd, base: base, buf: buf, data: data})
	}
	fd, err := a.create(hdr, pd.fd, base)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var off int64
	hole := false
	for {
		n, rerr := io.ReadFull(tr, a.buf)
		if n > 0 {
			h, err := writeSparse(f, a.buf[:n], off)
			if err != nil {
				return fmt.Errorf("archive: write %q: %w", hdr.Name, err)
			}
			hole = h
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("archive: read %q: %v: %w", hdr.Name, rerr, errdefs.ErrInvalidArgument)
		}
	}
	if off != hdr.Size {
		return fmt.Errorf("archive: %q: %d bytes of %d: %w", hdr.Name, off, hdr.Size, errdefs.ErrInvalidArgument)
	}
	if hole {
		if err := f.Truncate(off); err != nil { // a trailing hole
			return fmt.Errorf("archive: %q: %w", hdr.Name, err)
		}
	}
	return a.fileAttributes(hdr, fd, pd, base)
}

// create makes the file base in pfd, with its final permissions when the
// umask lets them through (saving a chmod).
func (a *applier) create(hdr *tar.Header, pfd int, base string) (int, error) {
	fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, tarMode(hdr)&0o777)
	if err != nil {
		return -1, fmt.Errorf("archive: create %q: %w", hdr.Name, err)
	}
	return fd, nil
}

// fileAttributes sets owner, mode, xattrs and times of a file just written
// through fd, skipping the calls that would change nothing.
func (a *applier) fileAttributes(hdr *tar.Header, fd int, pd *dirRef, base string) error {
	chowned := false
	if !a.opts.Unprivileged && (hdr.Uid != a.euid || hdr.Gid != a.egid || pd.setgid) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("archive: chown %q: %w", hdr.Name, err)
		}
		chowned = true
	}
	// After chown, which clears setuid and setgid.
	if mode := tarMode(hdr); chowned || mode&^0o777 != 0 || mode&a.umask != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("archive: chmod %q: %w", hdr.Name, err)
		}
	}
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pd.fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("archive: set times of %q: %w", hdr.Name, err)
	}
	return nil
}

// writeSmall is a worker's whole job for one file.
func (a *applier) writeSmall(j fileJob) error {
	defer a.bufs.put(j.buf)
	defer a.root.release(j.dir)
	fd, err := a.create(j.hdr, j.dir.fd, j.base)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for off := 0; off < len(j.data); {
		n, err := unix.Write(fd, j.data[off:])
		if err != nil {
			return fmt.Errorf("archive: write %q: %w", j.hdr.Name, err)
		}
		off += n
	}
	return a.fileAttributes(j.hdr, fd, j.dir, j.base)
}

// workers is how many goroutines create small files.
const workers = 3

// batchFiles is how many small files go to a worker at once: one wake-up
// per batch instead of per file (with 50,000 files, the goroutine
// hand-offs kept the scheduler spinning).
const batchFiles = 8

// dispatch hands a small file to the workers, starting them on first use.
func (a *applier) dispatch(j fileJob) error {
	if err := a.workErr(); err != nil {
		a.bufs.put(j.buf)
		a.root.release(j.dir)
		return err
	}
	if a.jobs == nil {
		jobs := make(chan []fileJob, maxSmallBufs/batchFiles)
		a.jobs = jobs
		for i := 0; i < workers; i++ {
			go func() {
				for batch := range jobs {
					for _, j := range batch {
						if a.workErr() == nil {
							if err := a.writeSmall(j); err != nil {
								a.errMu.Lock()
								if a.werr == nil {
									a.werr = err
								}
								a.errMu.Unlock()
							}
						} else {
							a.bufs.put(j.buf)
							a.root.release(j.dir)
						}
					}
					a.pending.Add(-len(batch))
				}
			}()
		}
	}
	a.batch = append(a.batch, j)
	if len(a.batch) >= batchFiles || len(a.bufs.free) == 0 && a.bufs.made >= maxSmallBufs {
		a.flush()
	}
	return nil
}

// flush hands the files gathered so far to the workers.
func (a *applier) flush() {
	if len(a.batch) == 0 {
		return
	}
	a.pending.Add(len(a.batch))
	a.jobs <- a.batch
	a.batch = make([]fileJob, 0, batchFiles)
}

func (a *applier) workErr() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.werr
}

// barrier waits until every file handed to the workers is written.
func (a *applier) barrier() error {
	a.flush()
	a.pending.Wait()
	clear(a.inflight)
	return a.workErr()
}

// stopWorkers waits for the workers and ends them.
func (a *applier) stopWorkers() error {
	err := a.barrier()
	if a.jobs != nil {
		close(a.jobs)
		a.jobs = nil
	}
	return err
}

const zeroRun = 64 << 10

var zeros = make([]byte, zeroRun)

// writeSparse writes b at off, skipping whole zero-filled 64 KiB runs so
// that they stay holes; it reports whether b ended in one.
func writeSparse(f *os.File, b []byte, off int64) (hole bool, err error) {
	for len(b) > 0 {
		n := min(len(b), zeroRun)
		if n == zeroRun && bytes.Equal(b[:n], zeros) {
			b, off, hole = b[n:], off+int64(n), true
			continue
		}
		if _, err := f.WriteAt(b[:n], off); err != nil {
			return false, err
		}
		b, off, hole = b[n:], off+int64(n), false
	}
	return hole, nil
}

func tarMode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o777
	if hdr.Mode&0o4000 != 0 {
		m |= unix.S_ISUID
	}
	if hdr.Mode&0o2000 != 0 {
		m |= unix.S_ISGID
	}
	if hdr.Mode&0o1000 != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// attributes sets owner, mode, xattrs and times of base in directory pfd
// (of the root itself when base is ""). Directory times wait until the end:
// creating children would change them.
func (a *applier) attributes(hdr *tar.Header, pfd int, base, name string) error {
	isLink := hdr.Typeflag == tar.TypeSymlink
	// The root itself is named "." from its own descriptor; anything else
	// by its one component in its parent, never followed.
	target, flags := base, unix.AT_SYMLINK_NOFOLLOW
	if base == "" {
		target, flags = ".", 0
	}
	if !a.opts.Unprivileged {
		if err := unix.Fchownat(pfd, target, hdr.Uid, hdr.Gid, flags); err != nil {
			return fmt.Errorf("archive: chown %q: %w", hdr.Name, err)
		}
	}
	if !isLink && hdr.Typeflag != tar.TypeDir {
		// The node was just made by us and is not a symlink, so following
		// is harmless; fchmodat cannot refuse to follow on Linux.
		if err := unix.Fchmodat(pfd, target, tarMode(hdr), 0); err != nil {
			return fmt.Errorf("archive: chmod %q: %w", hdr.Name, err)
		}
	}
	// Extended attributes through the parent's descriptor: the magic link
	// names the directory we hold, base is one component, and lsetxattr
	// does not follow it.
	p := fmt.Sprintf("/proc/self/fd/%d", pfd)
	if base != "" {
		p += "/" + base
	}
	set := func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }
	if base == "" {
		set = func(k string, v []byte) error { return unix.Setxattr(p, k, v, 0) }
	}
	if err := a.xattrs(hdr, set); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTimes{name: name, atime: accessTime(hdr), mtime: hdr.ModTime, mode: tarMode(hdr)})
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, target, ts, flags); err != nil {
		return fmt.Errorf("archive: set times of %q: %w", hdr.Name, err)
	}
	return nil
}

// xattrs applies the entry's extended attributes (PAX SCHILY.xattr.*).
// overlayfs's own attributes are never taken from a layer: they would let it
// redirect lookups or forge whiteouts.
func (a *applier) xattrs(hdr *tar.Header, set func(string, []byte) error) error {
	n := 0
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		n++
		if n > a.opts.Limits.MaxXattrs {
			return fmt.Errorf("archive: %q: more than %d extended attributes: %w", hdr.Name, a.opts.Limits.MaxXattrs, errdefs.ErrInvalidArgument)
		}
		if len(v) > a.opts.Limits.MaxXattrSize {
			return fmt.Errorf("archive: %q: extended attribute %q of %d bytes exceeds %d: %w", hdr.Name, name, len(v), a.opts.Limits.MaxXattrSize, errdefs.ErrInvalidArgument)
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		if err := set(name, []byte(v)); err != nil {
			if a.opts.Unprivileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue // trusted.* and security.* need privilege
			}
			return fmt.Errorf("archive: %q: set extended attribute %q: %w", hdr.Name, name, err)
		}
	}
	return nil
}

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

// finishDirs sets directory times, deepest first, now that their children
// exist.
func (a *applier) finishDirs() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		dir, base := path.Split(d.name)
		ts := []unix.Timespec{unix.NsecToTimespec(d.atime.UnixNano()), unix.NsecToTimespec(d.mtime.UnixNano())}
		target := "."
		if d.name != "" {
			target = base
		}
		pd, err := a.root.dir(strings.TrimSuffix(dir, "/"), false)
		if err == nil {
			var st unix.Stat_t
			// Still a directory? A later entry may have replaced it.
			if err = unix.Fstatat(pd.fd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err = unix.Fchmodat(pd.fd, target, d.mode, 0); err == nil {
					err = unix.UtimesNanoAt(pd.fd, target, ts, unix.AT_SYMLINK_NOFOLLOW)
				}
			}
			a.root.release(pd)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("archive: set times of %q: %w", d.name, err)
		}
	}
	return nil
}

// visibleInLayers reports whether rel exists in the overlay of layers
// (directories, newest first), the way overlayfs looks it up.
func visibleInLayers(layers []string, rel, xattrPrefix string) bool {
	return showingLayer(layers, rel, xattrPrefix) >= 0
}

// showingLayer returns the index of the layer (of directories, newest
// first) whose entry the overlay of layers shows at rel, or -1: a whiteout
// or a non-directory hides what is below it, an opaque directory hides the
// lower directories of the same name. Components are checked one at a
// time, so no symlink is ever followed.
func showingLayer(layers []string, rel, xattrPrefix string) int {
	parts := strings.Split(rel, "/")
	visible := make([]int, len(layers))
	for i := range visible {
		visible[i] = i
	}
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		last := i == len(parts)-1
		var next []int
		for _, li := range visible {
			l := layers[li]
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(l, p), &st); err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				break // a whiteout
			}
			if last {
				return li
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				break
			}
			next = append(next, li)
			if v, err := getxattr(filepath.Join(l, p), xattrPrefix+"opaque"); err == nil && string(v) == "y" {
				break
			}
		}
		if len(next) == 0 {
			return -1
		}
		visible = next
	}
	return -1
}

// PruneWhiteouts removes from the layer directory dir those of its whiteout
// devices (as listed by ApplyResult.Whiteouts) that hide nothing in parents
// (newest first): what Apply with ApplyOptions.Parents does at once, for
// layers applied in parallel before their parents were complete.
func PruneWhiteouts(dir string, whiteouts, parents []string, xattrPrefix string) error {
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	for _, w := range whiteouts {
		if visibleInLayers(parents, w, xattrPrefix) {
			continue
		}
		d, base := path.Split(w)
		pd, err := rt.dir(strings.TrimSuffix(d, "/"), false)
		if err != nil {
			return fmt.Errorf("archive: prune whiteout %q: %w", w, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pd.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			err = unix.Unlinkat(pd.fd, base, 0)
			if err != nil {
				rt.release(pd)
				return fmt.Errorf("archive: prune whiteout %q: %w", w, err)
			}
		} // else not (or no longer) a whiteout
		rt.release(pd)
	}
	return nil
}

// InheritDirs gives the directories of dir that Apply made for missing
// parents (ApplyResult.ImplicitDirs) the mode and owner of the directory
// the parents (newest first) show at that path, as they would have had
// the layer been applied on top of them: in an overlay upper directory
// they would otherwise hide the lower directory's attributes.
func InheritDirs(dir string, implicit, parents []string, xattrPrefix string) error {
	if len(implicit) == 0 || len(parents) == 0 {
		return nil
	}
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	for _, rel := range implicit {
		if !visibleInLayers(parents, rel, xattrPrefix) {
			continue
		}
		var from unix.Stat_t
		found := false
		for _, l := range parents {
			if err := unix.Lstat(filepath.Join(l, rel), &from); err != nil {
				continue
			}
			found = from.Mode&unix.S_IFMT == unix.S_IFDIR
			break
		}
		if !found {
			continue
		}
		d, err := rt.dir(rel, false)
		if err != nil {
			continue // replaced by a later entry of the layer
		}
		err = unix.Fchownat(d.fd, "", int(from.Uid), int(from.Gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			err = fmt.Errorf("archive: inherit owner of %q: %w", rel, err)
		} else if err = unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", d.fd), from.Mode&0o7777); err != nil {
			err = fmt.Errorf("archive: inherit mode of %q: %w", rel, err)
		}
		rt.release(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// LinkLowers makes the hard links that Apply deferred
// (ApplyResult.LowerLinks) in the layer directory dir, now that its
// parents (directories, newest first) exist: each target is copied up
// from the parents into dir, with its attributes, and linked, as Apply
// does when it knows the parents. A target the layer replaced or hid
// after the link was made is copied to the link's name alone, as the
// link kept the file natively. Directories made on the way get the
// parents' attributes (see InheritDirs). It returns errdefs.ErrNotFound
// for a target the parents do not show either.
func LinkLowers(dir string, links []HardLink, parents []string, xattrPrefix string) error {
	if len(links) == 0 {
		return nil
	}
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	a := &applier{dir: dir, root: rt, copied: map[string]struct{}{},
		opts: ApplyOptions{Whiteouts: WhiteoutOverlay, Parents: parents, OverlayXattrPrefix: xattrPrefix, Unprivileged: os.Geteuid() != 0}}
	for _, l := range links {
		if err := a.linkLower(l); err != nil {
			return fmt.Errorf("archive: hard link %q to %q: %w", l.Name, l.Target, err)
		}
	}
	var made []string
	for d := range rt.made {
		made = append(made, d)
	}
	return InheritDirs(dir, made, parents, xattrPrefix)
}

func (a *applier) linkLower(l HardLink) error {
	ldir, lbase := path.Split(l.Name)
	pd, err := a.root.dir(strings.TrimSuffix(ldir, "/"), true)
	if err != nil {
		return err
	}
	defer a.root.release(pd)
	if _, ok := a.copied[l.Target]; !ok {
		// What the layer has at the target now came after the link
		// (else Apply would have made it): a later entry, or a
		// whiteout. The link keeps the parents' file, alone.
		if hidden, present := upperState(a.dir, l.Target, a.opts.OverlayXattrPrefix); hidden || present {
			return a.copyUpTo(l.Target, l.Name)
		}
		if err := a.copyUp(l.Target); err != nil {
			return err
		}
	}
	if err := a.link(l.Target, pd.fd, lbase); err != nil {
		return err
	}
	a.copied[l.Name] = struct{}{} // a later link to it links it
	return nil
}

// upperState looks at rel in the layer directory dir alone: hidden says
// that the layer hides what its parents have there (a whiteout at rel, or
// a whiteout, non-directory or opaque directory on the way), present
// that dir has an entry at rel. No symlink is followed.
func upperState(dir, rel, xattrPrefix string) (hidden, present bool) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := filepath.Join(dir, filepath.Join(parts[:i+1]...))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return false, false
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			return true, i == len(parts)-1
		}
		if i == len(parts)-1 {
			return false, true
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return true, false
		}
		if v, err := getxattr(p, xattrPrefix+"opaque"); err == nil && string(v) == "y" {
			return true, false
		}
	}
	return false, false
}

// processUmask reads the umask without changing it (umask(2) can only set
// it, for the whole process).
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					return m
				}
			}
		}
	}
	return 0o777 // unknown: always chmod
}
