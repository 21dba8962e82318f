// Package imagetar writes the tar archives of image export (OCI image
// layout and docker save) the same way: deterministic entries (files 0444,
// directories 0755, root, dated 1970), parents before children, blobs
// streamed from the content store, and a cache that reads each index,
// manifest and config from the store once.
package imagetar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
)

// BlobPath is where blob d goes in an archive: blobs/<algorithm>/<hex>.
func BlobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// Epoch dates every entry an export writes, so that the same images
// give the same archive, byte for byte.
var Epoch = time.Unix(0, 0).UTC()

// CopyBufferSize is the chunk in which blobs are copied into the archive.
const CopyBufferSize = 1 << 20

// Writer writes the entries of an exported archive: files 0444 and
// directories 0755, owned by root, dated Epoch; the parent
// directories of a file are written before it, each once.
type Writer struct {
	tw   *tar.Writer
	dirs map[string]bool
	buf  []byte
}

// NewWriter writes an archive to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{tw: tar.NewWriter(w), dirs: map[string]bool{}}
}

func (a *Writer) header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: Epoch, Uname: "root", Gname: "root"}
}

// parents writes the directories above name that are not written yet.
func (a *Writer) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." || a.dirs[dir] {
		return nil
	}
	if err := a.parents(dir); err != nil {
		return err
	}
	a.dirs[dir] = true
	if err := a.tw.WriteHeader(a.header(dir+"/", tar.TypeDir, 0o755, 0)); err != nil {
		return fmt.Errorf("write %s/: %w", dir, err)
	}
	return nil
}

// File writes the entry name holding b.
func (a *Writer) File(ctx context.Context, name string, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := a.parents(name); err != nil {
		return err
	}
	if err := a.tw.WriteHeader(a.header(name, tar.TypeReg, 0o444, int64(len(b)))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := a.tw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Blob copies the blob desc from p into the entry BlobPath(desc.Digest),
// as it reads it. A blob whose size is not desc.Size is
// errdefs.ErrDataLoss; a blob gone since it was planned is
// errdefs.ErrNotFound.
func (a *Writer) Blob(ctx context.Context, p content.Provider, desc ocispec.Descriptor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("blob %s: the store has %d bytes, its descriptor says %d: %w", desc.Digest, ra.Size(), desc.Size, errdefs.ErrDataLoss)
	}
	name := BlobPath(desc.Digest)
	if err := a.parents(name); err != nil {
		return err
	}
	if err := a.tw.WriteHeader(a.header(name, tar.TypeReg, 0o444, desc.Size)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if a.buf == nil {
		a.buf = make([]byte, CopyBufferSize)
	}
	n, err := io.CopyBuffer(a.tw, CtxReader{Ctx: ctx, R: io.NewSectionReader(ra, 0, desc.Size)}, a.buf)
	if err != nil {
		return fmt.Errorf("copy blob %s into the archive: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return fmt.Errorf("copy blob %s into the archive: %d of %d bytes: %w", desc.Digest, n, desc.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

// Close writes the end of the archive; it does not close the underlying
// writer.
func (a *Writer) Close() error {
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("finish archive: %w", err)
	}
	return nil
}

// CtxReader stops a long copy when its context ends.
type CtxReader struct {
	Ctx context.Context
	R   io.Reader
}

func (c CtxReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}

// Cache is a Provider that keeps the indexes, manifests and configs it
// serves in memory: a walk parses them with the images package and the
// archive gets the same bytes, read from the store once. Other blobs
// (layers) pass through to the store.
type Cache struct {
	p     content.Provider
	blobs map[digest.Digest][]byte
}

// Bytes returns a blob Load read, or nil.
func (s *Cache) Bytes(d digest.Digest) []byte { return s.blobs[d] }

// NewCache returns a Cache over p.
func NewCache(p content.Provider) *Cache {
	return &Cache{p: p, blobs: map[digest.Digest][]byte{}}
}

// Load reads the blob desc into memory, refusing one larger than limit
// with errdefs.ErrInvalidArgument; a missing blob is errdefs.ErrNotFound.
func (s *Cache) Load(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if b, ok := s.blobs[desc.Digest]; ok {
		return b, nil
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes exceeds the limit of %d: %w", desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	b, err := content.ReadBlob(ctx, s.p, desc, limit)
	if err != nil {
		return nil, err
	}
	s.blobs[desc.Digest] = b
	return b, nil
}

// Has reports whether the blob desc is in the store, checking its size.
func (s *Cache) Has(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if _, ok := s.blobs[desc.Digest]; ok {
		return true, nil
	}
	ra, err := s.p.ReaderAt(ctx, desc)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	size := ra.Size()
	ra.Close()
	if size != desc.Size {
		return false, fmt.Errorf("blob %s: the store has %d bytes, its descriptor says %d: %w", desc.Digest, size, desc.Size, errdefs.ErrDataLoss)
	}
	return true, nil
}

// ReaderAt serves a loaded blob from memory, loads an index, manifest or
// config (up to images.MaxConfigSize), and opens anything else in the store.
func (s *Cache) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if b, ok := s.blobs[desc.Digest]; ok {
		return memBlob{bytes.NewReader(b)}, nil
	}
	if images.IsIndex(desc.MediaType) || images.IsManifest(desc.MediaType) || images.IsConfig(desc.MediaType) {
		b, err := s.Load(ctx, desc, images.MaxConfigSize)
		if err != nil {
			return nil, err
		}
		return memBlob{bytes.NewReader(b)}, nil
	}
	return s.p.ReaderAt(ctx, desc)
}

// memBlob is a blob held in memory.
type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }
