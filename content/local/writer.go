package local

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/content"
)

// Writer opens the ingest named by content.WithRef, resuming it when its
// directory exists: the offset is the size of its data file, and the digest
// state is rebuilt by reading that data once.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := content.ParseWriterOpts(opts...)
	if err != nil {
		return nil, err
	}
	if wo.Desc.Digest != "" {
		p, err := s.BlobPath(wo.Desc.Digest)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("content %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
	if err := s.lock(wo.Ref); err != nil {
		return nil, err
	}
	w, err := s.openWriter(ctx, wo)
	if err != nil {
		s.unlock(wo.Ref)
		return nil, err
	}
	return w, nil
}

func (s *Store) openWriter(ctx context.Context, wo content.WriterOpts) (*writer, error) {
	dir := s.ingestDir(wo.Ref)
	st, err := s.readStatus(dir)
	switch {
	case err == nil && st.Ref == wo.Ref:
		return s.resume(ctx, dir, st, wo)
	case err == nil, errors.Is(err, errdefs.ErrNotFound):
		// Absent, half-created, or (astronomically unlikely) another ref's
		// hash: start afresh.
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ingest %q: %w", wo.Ref, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ingest %q: %w", wo.Ref, err)
	}
	now := time.Now().UTC()
	f, err := s.createIngest(dir, wo, now)
	if err != nil {
		// Half made (a full disk, say): nothing to resume, and its blocks
		// are better free.
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ingest %q: %w", wo.Ref, err)
	}
	return s.newWriter(f, dir, content.Status{Ref: wo.Ref, Total: wo.Desc.Size, StartedAt: now, UpdatedAt: now}, sha256.New()), nil
}

// createIngest fills the new ingest directory dir and returns its data
// file.
func (s *Store) createIngest(dir string, wo content.WriterOpts, now time.Time) (*os.File, error) {
	if err := os.WriteFile(filepath.Join(dir, "startedat"), []byte(now.Format(time.RFC3339Nano)), 0o600); err != nil {
		return nil, err
	}
	if wo.Desc.Size > 0 {
		if err := os.WriteFile(filepath.Join(dir, "total"), []byte(strconv.FormatInt(wo.Desc.Size, 10)), 0o600); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	// ref is written last: an ingest directory with a ref file is complete.
	if err := os.WriteFile(filepath.Join(dir, "ref"), []byte(wo.Ref), 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s *Store) resume(ctx context.Context, dir string, st content.Status, wo content.WriterOpts) (*writer, error) {
	// A commit that died between chmod and rename left it read-only.
	if err := os.Chmod(filepath.Join(dir, "data"), 0o600); err != nil {
		return nil, fmt.Errorf("resume ingest %q: %w", wo.Ref, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("resume ingest %q: %w", wo.Ref, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, st.Offset))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("resume ingest %q: %w", wo.Ref, err)
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	st.Offset = n
	if wo.Desc.Size > 0 && wo.Desc.Size != st.Total {
		st.Total = wo.Desc.Size
		if err := os.WriteFile(filepath.Join(dir, "total"), []byte(strconv.FormatInt(st.Total, 10)), 0o600); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s.newWriter(f, dir, st, h), nil
}

// Writes are copied into blocks and handed to two goroutines in turn, one
// hashing and one writing, so that hashing (the cost that cannot be avoided)
// overlaps the caller's copy and the write to disk. (Hashing in the caller,
// on bytes still hot in its cache, measured slower: the copy and the hash
// then take turns on one core.) The goroutines start with the first full
// block, so small blobs (manifests, configs) never pay for them.
const (
	blockSize  = 1 << 20
	pipeDepth  = 16
	writebackN = 8 << 20 // start writeback of this much at a time
)

type writer struct {
	s    *Store
	f    *os.File
	dir  string
	st   content.Status
	hash hash.Hash

	cur []byte // block being filled

	// Started with the first full block.
	toHash  chan []byte
	toWrite chan []byte
	free    chan []byte
	nblocks int // blocks circulating through free
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	written int64 // bytes handed to the file, owned by the write goroutine
	synced  int64 // bytes whose writeback was started

	direct   bool          // the file is open O_DIRECT
	noDirect bool          // the filesystem refused O_DIRECT
	prepared digest.Digest // set by Prepare: verified, synced, file closed
	closed   bool
}

func (s *Store) newWriter(f *os.File, dir string, st content.Status, h hash.Hash) *writer {
	return &writer{s: s, f: f, dir: dir, st: st, hash: h, written: st.Offset, synced: st.Offset}
}

// blocks recycles the pipeline's buffers across writers.
// Blocks are aligned for O_DIRECT.
var blocks = sync.Pool{New: func() any {
	raw := make([]byte, blockSize+directAlign)
	off := directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)
	b := raw[off : off : off+blockSize]
	return &b
}}

// directAlign is the alignment O_DIRECT wants of memory, offsets and sizes
// (the logical block size of any disk we meet is at most this).
const directAlign = 4096

func (w *writer) start() {
	// Large blobs bypass the page cache: O_DIRECT writes cost no kernel
	// copy and no page allocation, which leaves the core to hashing. A
	// filesystem without O_DIRECT (tmpfs) keeps buffered writes.
	if !w.noDirect && w.written%directAlign == 0 {
		if fl, err := unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0); err == nil {
			if _, err := unix.FcntlInt(w.f.Fd(), unix.F_SETFL, fl|unix.O_DIRECT); err == nil {
				w.direct = true
			} else {
				w.noDirect = true
			}
		}
	}
	w.toHash = make(chan []byte, pipeDepth)
	w.toWrite = make(chan []byte, pipeDepth)
	w.free = make(chan []byte, pipeDepth+1)
	for i := 0; i < pipeDepth; i++ {
		w.free <- (*blocks.Get().(*[]byte))[:0]
	}
	w.nblocks = pipeDepth + 1 // and the block that started it
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		defer close(w.toWrite)
		for b := range w.toHash {
			w.hash.Write(b)
			w.toWrite <- b
		}
	}()
	go func() {
		defer w.wg.Done()
		for b := range w.toWrite {
			if w.failed() == nil {
				if err := w.writeFile(b); err != nil {
					w.setErr(err)
				}
			}
			w.free <- b[:0]
		}
	}()
}

func (w *writer) writeFile(b []byte) error {
	if w.direct && (len(b)%directAlign != 0 || w.written%directAlign != 0) {
		// The tail of the blob: back to buffered writes for good.
		if err := w.setDirect(false); err != nil {
			return fmt.Errorf("write ingest %q: %w", w.st.Ref, err)
		}
	}
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("write ingest %q: %w", w.st.Ref, err)
	}
	w.written += int64(len(b))
	if !w.direct && w.written-w.synced >= writebackN {
		// Asynchronous: only starts the writeback, so that Commit's fsync
		// finds little left to do.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.synced, w.written-w.synced, unix.SYNC_FILE_RANGE_WRITE)
		w.synced = w.written
	}
	return nil
}

func (w *writer) setDirect(on bool) error {
	fl, err := unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		fl |= unix.O_DIRECT
	} else {
		fl &^= unix.O_DIRECT
	}
	if _, err := unix.FcntlInt(w.f.Fd(), unix.F_SETFL, fl); err != nil {
		return err
	}
	w.direct = on
	return nil
}

func (w *writer) setErr(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

func (w *writer) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Write appends p to the ingest.
func (w *writer) Write(p []byte) (int, error) {
	if w.closed || w.prepared != "" {
		return 0, fmt.Errorf("ingest %q: writer closed: %w", w.st.Ref, errdefs.ErrFailedPrecondition)
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if w.cur == nil {
			if w.free != nil {
				w.cur = <-w.free
			} else {
				w.cur = (*blocks.Get().(*[]byte))[:0]
			}
		}
		c := copy(w.cur[len(w.cur):blockSize], p)
		w.cur = w.cur[:len(w.cur)+c]
		p = p[c:]
		if len(w.cur) == blockSize {
			if w.toHash == nil {
				w.start()
			}
			w.toHash <- w.cur
			w.cur = nil
		}
	}
	w.st.Offset += int64(n)
	w.st.UpdatedAt = time.Now()
	return n, nil
}

// flush waits until every byte accepted by Write is hashed and in the file.
func (w *writer) flush() error {
	if w.toHash != nil {
		if w.cur != nil {
			w.toHash <- w.cur
			w.cur = nil
		}
		close(w.toHash)
		w.wg.Wait()
		w.toHash = nil
		for i := 0; i < w.nblocks; i++ {
			b := <-w.free
			blocks.Put(&b)
		}
		w.free = nil
	} else if w.cur != nil {
		b := w.cur
		w.cur = nil
		w.hash.Write(b)
		err := w.writeFile(b)
		b = b[:0]
		blocks.Put(&b)
		if err != nil {
			w.setErr(err)
		}
	}
	return w.failed()
}

// Digest returns the digest of everything written so far.
func (w *writer) Digest() digest.Digest {
	if w.prepared != "" {
		return w.prepared
	}
	if err := w.flush(); err != nil {
		return ""
	}
	return digest.NewDigest(digest.SHA256, w.hash)
}

// Status returns the ingest's state.
func (w *writer) Status() (content.Status, error) {
	return w.st, nil
}

// Prepare verifies size (when > 0) and expected (when set) against what was
// written and makes the data durable, without publishing it: Commit after
// Prepare only renames. It returns errdefs.ErrFailedPrecondition on a
// mismatch. A size mismatch (or an ingest shorter than its total) leaves
// the writer usable, to Truncate or to write the rest, and so does a digest
// mismatch, as in containerd.
func (w *writer) Prepare(ctx context.Context, size int64, expected digest.Digest) (digest.Digest, error) {
	if w.prepared != "" {
		return w.prepared, nil
	}
	if w.closed {
		return "", fmt.Errorf("ingest %q: writer closed: %w", w.st.Ref, errdefs.ErrFailedPrecondition)
	}
	if err := w.flush(); err != nil {
		return "", err
	}
	if size > 0 && size != w.st.Offset {
		return "", fmt.Errorf("commit ingest %q: wrote %d bytes, expected %d: %w", w.st.Ref, w.st.Offset, size, errdefs.ErrFailedPrecondition)
	}
	dgst := digest.NewDigest(digest.SHA256, w.hash)
	if expected != "" && expected != dgst {
		// The ingest stays, as containerd's does (its conformance suite
		// commits it after a wrong digest); strata's pull aborts it.
		return "", fmt.Errorf("commit ingest %q: content has digest %s, expected %s: %w", w.st.Ref, dgst, expected, errdefs.ErrFailedPrecondition)
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("commit ingest %q: sync: %w", w.st.Ref, err)
	}
	// Read-only before it is visible; resume makes it writable again if the
	// rename never happens.
	if err := w.f.Chmod(0o444); err != nil {
		return "", err
	}
	if err := w.f.Close(); err != nil {
		return "", err
	}
	w.prepared = dgst
	return dgst, nil
}

// Commit verifies the data (see Prepare) and publishes the blob. The ref
// stays locked until the ingest directory is gone, so no second writer can
// reopen the data file while it becomes the blob.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	dgst, err := w.Prepare(ctx, size, expected)
	if err != nil {
		return err
	}
	defer w.release()
	target, err := w.s.BlobPath(dgst)
	if err != nil {
		return err
	}
	if _, err := os.Stat(target); err == nil {
		os.RemoveAll(w.dir)
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	if err := os.Rename(filepath.Join(w.dir, "data"), target); err != nil {
		return fmt.Errorf("commit ingest %q: %w", w.st.Ref, err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("commit ingest %q: %w", w.st.Ref, err)
	}
	// Without its data file the directory is debris that RemoveBrokenIngests
	// removes if this fails or the process dies here.
	if err := os.RemoveAll(w.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit ingest %q: remove ingest: %w", w.st.Ref, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Truncate drops everything after size bytes and rehashes what remains.
func (w *writer) Truncate(size int64) error {
	if w.closed || w.prepared != "" {
		return fmt.Errorf("ingest %q: writer closed: %w", w.st.Ref, errdefs.ErrFailedPrecondition)
	}
	if err := w.flush(); err != nil {
		return err
	}
	if size > w.st.Offset {
		return fmt.Errorf("truncate ingest %q to %d: beyond offset %d: %w", w.st.Ref, size, w.st.Offset, errdefs.ErrInvalidArgument)
	}
	if w.direct {
		// The rehash below reads through unaligned buffers.
		if err := w.setDirect(false); err != nil {
			return err
		}
	}
	if err := w.f.Truncate(size); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(w.f, 0, size)); err != nil {
		return err
	}
	if _, err := w.f.Seek(size, io.SeekStart); err != nil {
		return err
	}
	w.hash = h
	w.st.Offset, w.written, w.synced = size, size, size
	return nil
}

// Close releases the ref; an uncommitted ingest stays, resumable.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.flush()
	if err == nil && w.prepared == "" {
		// A resumed ingest reports its last write as UpdatedAt, read from
		// the data file's mtime: the kernel stamps it with a coarse clock
		// (up to a tick before the write), so it gets the time exactly.
		if cerr := os.Chtimes(filepath.Join(w.dir, "data"), time.Time{}, w.st.UpdatedAt); cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
			err = cerr
		}
	}
	if cerr := w.f.Close(); cerr != nil && err == nil && !errors.Is(cerr, os.ErrClosed) && w.prepared == "" {
		err = cerr
	}
	w.release()
	return err
}

func (w *writer) release() {
	if !w.closed {
		w.closed = true
		w.s.unlock(w.st.Ref)
	}
}
