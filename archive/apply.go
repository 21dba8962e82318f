package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
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

// streamError is a layer stream that could not be read: the layer is
// invalid (errdefs.ErrInvalidArgument, first in the chain, so errdefs.Resolve
// and the gRPC code stay InvalidArgument whatever the cause), and the
// reader's own error stays in the chain for errors.Is and errors.As (a
// cancelled context, io.ErrUnexpectedEOF, a registry's error).
type streamError struct {
	op  string // what was read: "archive: read tar entry 3"
	err error
}

func (e *streamError) Error() string {
	return e.op + ": " + e.err.Error() + ": " + errdefs.ErrInvalidArgument.Error()
}

func (e *streamError) Unwrap() []error { return []error{errdefs.ErrInvalidArgument, e.err} }

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
			return res, &streamError{op: fmt.Sprintf("archive: read tar entry %d", res.Entries+1), err: err}
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
