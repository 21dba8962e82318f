// Package local is the content store on the local filesystem. It knows nothing
// of namespaces or labels: the metadata package layers those on top.
//
// On disk, under the store's root (<strata root>/content):
//
//	blobs/
//	  sha256/
//	    <hex>              committed blob, mode 0444
//	ingest/
//	  <sha256(ref) hex>/   one ingest
//	    ref                the ingest's ref
//	    data               bytes written so far; its size is the resume offset
//	    startedat          RFC 3339 time the ingest began
//	    total              expected size, when known
//
// A commit fsyncs data, renames it into blobs/ and fsyncs the directory, so a
// blob is either complete and verified or absent, whatever moment the process
// dies at.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/filters"
)

// Store is a content.Store on a directory. Its labels are not kept: Info and
// Walk report none and Update refuses with errdefs.ErrNotImplemented.
type Store struct {
	root string

	mu     sync.Mutex
	locked map[string]struct{} // refs with an open writer
}

var _ content.Store = (*Store)(nil)

// New opens or creates a store at root. Call RemoveBrokenIngests once the
// process owns the store (it holds the metadata database's lock).
func New(root string) (*Store, error) {
	for _, dir := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	return &Store{root: root, locked: map[string]struct{}{}}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// BlobPath returns where the blob dgst lives; it does not check it exists.
func (s *Store) BlobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %s: only sha256 is supported: %w", dgst, errdefs.ErrNotImplemented)
	}
	return filepath.Join(s.root, "blobs", "sha256", dgst.Encoded()), nil
}

func (s *Store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, "ingest", hex.EncodeToString(sum[:]))
}

// ReaderAt opens the blob desc.Digest.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := s.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("content %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &sizeReaderAt{File: f, size: fi.Size()}, nil
}

type sizeReaderAt struct {
	*os.File
	size int64
}

func (r *sizeReaderAt) Size() int64 { return r.size }

// Info returns the size and times of the blob dgst.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Info{}, fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
		}
		return content.Info{}, err
	}
	return infoOf(dgst, fi), nil
}

func infoOf(dgst digest.Digest, fi fs.FileInfo) content.Info {
	return content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime(), UpdatedAt: fi.ModTime()}
}

// Update is not supported: labels live in the metadata layer.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	return content.Info{}, fmt.Errorf("update content %s: labels are kept by the metadata store: %w", info.Digest, errdefs.ErrNotImplemented)
}

// Walk calls fn for every committed blob matching any of fs.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, fss ...string) error {
	filter, err := filters.ParseAll(fss...)
	if err != nil {
		return err
	}
	return s.Digests(ctx, func(dgst digest.Digest) error {
		p, _ := s.BlobPath(dgst)
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		info := infoOf(dgst, fi)
		if !filter.Match(content.AdaptInfo(info)) {
			return nil
		}
		return fn(info)
	})
}

// Digests calls fn with the digest of every committed blob, without reading
// any file's metadata; it is the cheap walk that GC uses.
func (s *Store) Digests(ctx context.Context, fn func(digest.Digest) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(4096)
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !isHex64(name) {
				continue // not a blob of ours
			}
			dgst := digest.NewDigestFromEncoded(digest.SHA256, name)
			if err := fn(dgst); err != nil {
				return err
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(names) == 0 {
			return nil
		}
	}
}

// Delete removes the blob dgst.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
		}
		return err
	}
	return nil
}

// lock takes ref for one writer.
func (s *Store) lock(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.locked[ref]; ok {
		return fmt.Errorf("ingest ref %q locked: another writer is using it: %w", ref, errdefs.ErrUnavailable)
	}
	s.locked[ref] = struct{}{}
	return nil
}

func (s *Store) unlock(ref string) {
	s.mu.Lock()
	delete(s.locked, ref)
	s.mu.Unlock()
}

// Active reports whether a writer currently holds ref.
func (s *Store) Active(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.locked[ref]
	return ok
}

// Status returns the state of the ingest ref.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	st, err := s.readStatus(s.ingestDir(ref))
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return content.Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return content.Status{}, err
	}
	if st.Ref != ref {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return st, nil
}

func (s *Store) readStatus(dir string) (content.Status, error) {
	refb, err := os.ReadFile(filepath.Join(dir, "ref"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Status{}, errdefs.ErrNotFound
		}
		return content.Status{}, err
	}
	fi, err := os.Stat(filepath.Join(dir, "data"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Status{}, errdefs.ErrNotFound
		}
		return content.Status{}, err
	}
	st := content.Status{Ref: string(refb), Offset: fi.Size(), UpdatedAt: fi.ModTime()}
	if b, err := os.ReadFile(filepath.Join(dir, "startedat")); err == nil {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "total")); err == nil {
		st.Total, _ = strconv.ParseInt(string(b), 10, 64)
	}
	return st, nil
}

// ListStatuses returns the ingests matching any of fs (field: ref).
func (s *Store) ListStatuses(ctx context.Context, fss ...string) ([]content.Status, error) {
	filter, err := filters.ParseAll(fss...)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, err
	}
	var out []content.Status
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		st, err := s.readStatus(filepath.Join(s.root, "ingest", e.Name()))
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				continue // being created or removed
			}
			return nil, err
		}
		if filter.Match(content.AdaptStatus(st)) {
			out = append(out, st)
		}
	}
	return out, nil
}

// Abort removes the ingest ref. It returns errdefs.ErrUnavailable while a
// writer holds it.
func (s *Store) Abort(ctx context.Context, ref string) error {
	if err := s.lock(ref); err != nil {
		return err
	}
	defer s.unlock(ref)
	dir := s.ingestDir(ref)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return err
	}
	return os.RemoveAll(dir)
}

// AbortHeld removes ingest ref even while a writer holds it, as
// containerd's Abort does: that writer's later Commit fails, and the ref
// stays locked until it is closed. Abort, which leaves a held ingest alone,
// is what garbage collection uses.
func (s *Store) AbortHeld(ctx context.Context, ref string) error {
	dir := s.ingestDir(ref)
	if _, err := os.Stat(filepath.Join(dir, "ref")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return err
	}
	return os.RemoveAll(dir)
}

// RemoveBrokenIngests removes ingest directories that lack their ref or data
// file: a process died while creating or removing them. Only the process that
// owns the store may call it: another's ingests look broken mid-creation.
func (s *Store) RemoveBrokenIngests() error {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				os.Remove(p)
			}
			continue
		}
		// A ref file cut short by a crash does not name this directory:
		// nothing was written to such an ingest yet (ref is written before
		// any data).
		if st, err := s.readStatus(p); errors.Is(err, errdefs.ErrNotFound) || (err == nil && filepath.Base(s.ingestDir(st.Ref)) != e.Name()) {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("remove broken ingest %s: %w", p, err)
			}
		}
	}
	return nil
}

// BrokenIngests lists ingest directories that cannot be resumed, for fsck.
// The directory of a ref a writer holds is not broken, whatever it looks
// like: the writer is creating it, or removing it after its commit.
func (s *Store) BrokenIngests() ([]string, error) {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	// Taken after the listing: a writer locks its ref before it creates
	// the directory and removes it before it unlocks, so a listed
	// directory is either held here or finished (complete or gone).
	s.mu.Lock()
	held := make(map[string]bool, len(s.locked))
	for ref := range s.locked {
		held[s.ingestDir(ref)] = true
	}
	s.mu.Unlock()
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if held[p] {
			continue
		}
		st, err := s.readStatus(p)
		if err != nil || !e.IsDir() || filepath.Base(s.ingestDir(st.Ref)) != e.Name() {
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				continue // committed or aborted since the listing
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// RemoveBrokenIngest removes the ingest directory path that BrokenIngests
// listed, if it is still broken and no writer holds its ref; removed
// reports whether it did. A writer that wants the ref meanwhile waits.
func (s *Store) RemoveBrokenIngest(path string) (removed bool, err error) {
	if filepath.Dir(path) != filepath.Join(s.root, "ingest") {
		return false, fmt.Errorf("ingest directory %s: not in %s: %w", path, s.root, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ref := range s.locked {
		if s.ingestDir(ref) == path {
			return false, nil
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st, err := s.readStatus(path); fi.IsDir() && err == nil && s.ingestDir(st.Ref) == path {
		return false, nil // whole again
	}
	if err := os.RemoveAll(path); err != nil {
		return false, fmt.Errorf("remove broken ingest %s: %w", path, err)
	}
	return true, nil
}

// isHex64 reports whether name is a sha256 digest's encoding: 64 lower-case
// hex digits. It is the check digest.Validate makes, without a regexp per
// name (GC walks every blob).
func isHex64(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
