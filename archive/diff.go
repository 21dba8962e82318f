package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// DiffResult describes a layer written by WriteDiff or WriteOverlayDiff.
type DiffResult struct {
	// DiffID is the digest of the uncompressed tar, Size its length.
	DiffID digest.Digest
	Size   int64
}

// WriteOverlayDiff writes to w the layer that an overlayfs upper directory
// holds: every entry in it, a 0/0 character device as ".wh.NAME" and a
// directory marked opaque (xattrPrefix+"opaque"="y") as the directory and
// its ".wh..wh..opq". The lower layers are not read at all.
func WriteOverlayDiff(ctx context.Context, w io.Writer, upper string, c Compression, xattrPrefix string) (DiffResult, error) {
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	dw, err := newDiffWriter(w, c)
	if err != nil {
		return DiffResult{}, err
	}
	err = walkSorted(ctx, upper, "", func(rel string, fi os.FileInfo) (bool, error) {
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0 {
			return false, dw.whiteout(rel)
		}
		if err := dw.entry(filepath.Join(upper, rel), rel, fi); err != nil {
			return false, err
		}
		if fi.IsDir() {
			if v, err := getxattr(filepath.Join(upper, rel), xattrPrefix+"opaque"); err == nil && string(v) == "y" {
				return true, dw.opaque(rel)
			}
		}
		return true, nil
	})
	if err != nil {
		return DiffResult{}, err
	}
	return dw.close()
}

// WriteDiff writes to w the layer that turns the tree lower into the tree
// upper: entries added or changed (type, mode, owner, size, mtime, link
// target, device, xattrs) with their parent directories, and ".wh.NAME" for
// entries upper lacks. lower may be "" for an empty tree.
func WriteDiff(ctx context.Context, w io.Writer, lower, upper string, c Compression) (DiffResult, error) {
	dw, err := newDiffWriter(w, c)
	if err != nil {
		return DiffResult{}, err
	}
	if err := dw.compareDir(ctx, lower, upper, ""); err != nil {
		return DiffResult{}, err
	}
	return dw.close()
}

type diffWriter struct {
	tw      *tar.Writer
	zw      io.WriteCloser // nil when uncompressed
	hash    hash.Hash
	counter *countWriter
	links   map[[2]uint64]string // (dev, inode) → first name written
	pending []pendingDir         // ancestors not yet written (two-tree mode)
	buf     []byte
}

type pendingDir struct {
	rel     string
	path    string
	fi      os.FileInfo
	written bool
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newDiffWriter(w io.Writer, c Compression) (*diffWriter, error) {
	dw := &diffWriter{hash: sha256.New(), links: map[[2]uint64]string{}, buf: make([]byte, 1<<20)}
	var out io.Writer = w
	switch c {
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		dw.zw, out = zw, zw
	case Zstd:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return nil, err
		}
		dw.zw, out = zw, zw
	}
	dw.counter = &countWriter{w: io.MultiWriter(out, dw.hash)}
	dw.tw = tar.NewWriter(dw.counter)
	return dw, nil
}

func (dw *diffWriter) close() (DiffResult, error) {
	if err := dw.tw.Close(); err != nil {
		return DiffResult{}, fmt.Errorf("archive: diff: %w", err)
	}
	if dw.zw != nil {
		if err := dw.zw.Close(); err != nil {
			return DiffResult{}, fmt.Errorf("archive: diff: %w", err)
		}
	}
	return DiffResult{DiffID: digest.NewDigest(digest.SHA256, dw.hash), Size: dw.counter.n}, nil
}

func (dw *diffWriter) whiteout(rel string) error {
	dir, base := path.Split(rel)
	return dw.tw.WriteHeader(&tar.Header{Name: dir + whiteoutPrefix + base, Typeflag: tar.TypeReg, Mode: 0o600, Format: tar.FormatPAX, ModTime: time.Unix(0, 0)})
}

func (dw *diffWriter) opaque(rel string) error {
	return dw.tw.WriteHeader(&tar.Header{Name: rel + "/" + whiteoutOpaque, Typeflag: tar.TypeReg, Mode: 0o600, Format: tar.FormatPAX, ModTime: time.Unix(0, 0)})
}

// entry writes the header (and content) of the file at p, named rel.
func (dw *diffWriter) entry(p, rel string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFREG:
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := dw.links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return dw.writeHeader(hdr, p)
		}
		if st.Nlink > 1 {
			dw.links[key] = rel
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil // sockets do not go into layers
	default:
		return fmt.Errorf("archive: diff %q: unsupported file type %o", rel, st.Mode&unix.S_IFMT)
	}
	if err := dw.writeHeader(hdr, p); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(dw.tw, io.LimitReader(f, hdr.Size), dw.buf)
	if err != nil {
		return fmt.Errorf("archive: diff %q: %w", rel, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("archive: diff %q: file shrank from %d to %d bytes while read", rel, hdr.Size, n)
	}
	return nil
}

func (dw *diffWriter) writeHeader(hdr *tar.Header, p string) error {
	xs, err := listXattrs(p)
	if err != nil {
		return fmt.Errorf("archive: diff %q: %w", hdr.Name, err)
	}
	for k, v := range xs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	if err := dw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive: diff %q: %w", hdr.Name, err)
	}
	return nil
}

// listXattrs reads the extended attributes of p (not following it),
// without overlayfs's own.
func listXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, err
		}
		out[name] = string(v)
	}
	return out, nil
}

func getxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// walkSorted calls fn for every entry under dir/rel in lexical order,
// parents first; fn says whether to descend into a directory.
func walkSorted(ctx context.Context, dir, rel string, fn func(rel string, fi os.FileInfo) (bool, error)) error {
	names, err := readNames(filepath.Join(dir, rel))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := path.Join(rel, n)
		fi, err := os.Lstat(filepath.Join(dir, r))
		if err != nil {
			return err
		}
		descend, err := fn(r, fi)
		if err != nil {
			return err
		}
		if descend && fi.IsDir() {
			if err := walkSorted(ctx, dir, r, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// compareDir writes the differences between lower/rel and upper/rel.
func (dw *diffWriter) compareDir(ctx context.Context, lower, upper, rel string) error {
	upNames, err := readNames(filepath.Join(upper, rel))
	if err != nil {
		return err
	}
	var lowNames []string
	if lower != "" {
		lowNames, err = readNames(filepath.Join(lower, rel))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	inUpper := make(map[string]bool, len(upNames))
	for _, n := range upNames {
		inUpper[n] = true
	}
	// Deletions first within a directory: a whiteout before a new entry
	// of the same name would hide nothing of this layer anyway.
	for _, n := range lowNames {
		if !inUpper[n] {
			if err := dw.flushPending(); err != nil {
				return err
			}
			if err := dw.whiteout(path.Join(rel, n)); err != nil {
				return err
			}
		}
	}
	for _, n := range upNames {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := path.Join(rel, n)
		up := filepath.Join(upper, r)
		ufi, err := os.Lstat(up)
		if err != nil {
			return err
		}
		var lfi os.FileInfo
		if lower != "" {
			lfi, _ = os.Lstat(filepath.Join(lower, r))
		}
		changed := lfi == nil || !sameEntry(filepath.Join(lower, r), up, lfi, ufi)
		if ufi.IsDir() && (lfi == nil || lfi.IsDir()) {
			dw.pending = append(dw.pending, pendingDir{rel: r, path: up, fi: ufi})
			if changed {
				if err := dw.flushPending(); err != nil {
					return err
				}
			}
			lowerArg := lower
			if lfi == nil {
				lowerArg = ""
			}
			if err := dw.compareDir(ctx, lowerArg, upper, r); err != nil {
				return err
			}
			dw.pending = dw.pending[:len(dw.pending)-1]
			continue
		}
		if !changed {
			continue
		}
		if lfi != nil && lfi.IsDir() && !ufi.IsDir() {
			// A directory became something else: hide the old tree.
			if err := dw.flushPending(); err != nil {
				return err
			}
			if err := dw.whiteout(r); err != nil {
				return err
			}
		}
		if err := dw.flushPending(); err != nil {
			return err
		}
		if err := dw.entry(up, r, ufi); err != nil {
			return err
		}
		if ufi.IsDir() { // was not a directory below
			if err := dw.compareDir(ctx, "", upper, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushPending writes the ancestors of the entry about to be written.
func (dw *diffWriter) flushPending() error {
	for i := range dw.pending {
		if dw.pending[i].written {
			continue
		}
		if err := dw.entry(dw.pending[i].path, dw.pending[i].rel, dw.pending[i].fi); err != nil {
			return err
		}
		dw.pending[i].written = true
	}
	return nil
}

// sameEntry reports whether two entries look identical: type, mode, owner,
// size, mtime, link target or device, and xattrs. Content is not read: like
// every layer differ, it trusts size and nanosecond mtime.
func sameEntry(lp, up string, lfi, ufi os.FileInfo) bool {
	ls, us := lfi.Sys().(*syscall.Stat_t), ufi.Sys().(*syscall.Stat_t)
	if ls.Mode != us.Mode || ls.Uid != us.Uid || ls.Gid != us.Gid || ls.Rdev != us.Rdev {
		return false
	}
	if us.Mode&unix.S_IFMT != unix.S_IFDIR && (ls.Size != us.Size || ls.Mtim != us.Mtim) {
		return false
	}
	if us.Mode&unix.S_IFMT == unix.S_IFDIR && ls.Mtim != us.Mtim {
		return false
	}
	if us.Mode&unix.S_IFMT == unix.S_IFLNK {
		a, _ := os.Readlink(lp)
		b, _ := os.Readlink(up)
		if a != b {
			return false
		}
	}
	lx, _ := listXattrs(lp)
	ux, _ := listXattrs(up)
	if len(lx) != len(ux) {
		return false
	}
	for k, v := range lx {
		if ux[k] != v {
			return false
		}
	}
	return true
}
