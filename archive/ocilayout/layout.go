// Package ocilayout writes and reads OCI image layouts as tar streams
// (image-spec image-layout.md): the archives of `ctr images export`,
// `skopeo copy oci-archive:` and `podman save --format oci-archive`.
//
//	oci-layout           {"imageLayoutVersion":"1.0.0"}
//	index.json           an OCI index: one descriptor per image
//	blobs/sha256/<hex>   every blob once, named by its digest
//
// An image's descriptor in index.json is its target (an index or a
// manifest) with two annotations: org.opencontainers.image.ref.name, the
// tag ("1.2"), which the OCI spec and skopeo's oci-archive:FILE:1.2 use, and
// io.containerd.image.name, the full name ("ghcr.io/org/app:1.2"), which
// containerd's importer and strata's use to name the image again.
//
// Export writes index.json before the blobs and the small blobs (indexes,
// manifests, configs) before the layers, so that a streaming reader knows
// what it gets early; the layers are copied from the content store into
// the tar stream as they are read, never held in memory or in a temporary
// file.
package ocilayout

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

// AnnotationImageName carries the full name of an image on its descriptor
// in index.json, as containerd writes it.
const AnnotationImageName = "io.containerd.image.name"

// BlobPath returns where the blob d lives in a layout: "blobs/sha256/<hex>".
func BlobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// archiveEpoch dates every entry an export writes, so that the same images
// give the same archive, byte for byte.
var archiveEpoch = time.Unix(0, 0).UTC()

// copyBufferSize is the chunk in which blobs are copied into the archive.
const copyBufferSize = 1 << 20

// archiveWriter writes the entries of an exported archive: files 0444 and
// directories 0755, owned by root, dated archiveEpoch; the parent
// directories of a file are written before it, each once.
type archiveWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
	buf  []byte
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	return &archiveWriter{tw: tar.NewWriter(w), dirs: map[string]bool{}}
}

func (a *archiveWriter) header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: archiveEpoch, Uname: "root", Gname: "root"}
}

// parents writes the directories above name that are not written yet.
func (a *archiveWriter) parents(name string) error {
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

// file writes the entry name holding b.
func (a *archiveWriter) file(ctx context.Context, name string, b []byte) error {
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

// blob copies the blob desc from p into the entry BlobPath(desc.Digest),
// as it reads it. A blob whose size is not desc.Size is
// errdefs.ErrDataLoss; a blob gone since it was planned is
// errdefs.ErrNotFound.
func (a *archiveWriter) blob(ctx context.Context, p content.Provider, desc ocispec.Descriptor) error {
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
		a.buf = make([]byte, copyBufferSize)
	}
	n, err := io.CopyBuffer(a.tw, exportReader{ctx, io.NewSectionReader(ra, 0, desc.Size)}, a.buf)
	if err != nil {
		return fmt.Errorf("copy blob %s into the archive: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return fmt.Errorf("copy blob %s into the archive: %d of %d bytes: %w", desc.Digest, n, desc.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

// close writes the end of the archive; it does not close the underlying
// writer.
func (a *archiveWriter) close() error {
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("finish archive: %w", err)
	}
	return nil
}

// exportReader stops a long copy when its context ends.
type exportReader struct {
	ctx context.Context
	r   io.Reader
}

func (c exportReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// smallBlobs is a Provider that keeps the indexes, manifests and configs it
// serves in memory: a walk parses them with the images package and the
// archive gets the same bytes, read from the store once. Other blobs
// (layers) pass through to the store.
type smallBlobs struct {
	p     content.Provider
	blobs map[digest.Digest][]byte
}

func newSmallBlobs(p content.Provider) *smallBlobs {
	return &smallBlobs{p: p, blobs: map[digest.Digest][]byte{}}
}

// load reads the blob desc into memory, refusing one larger than limit
// with errdefs.ErrInvalidArgument; a missing blob is errdefs.ErrNotFound.
func (s *smallBlobs) load(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
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

// has reports whether the blob desc is in the store, checking its size.
func (s *smallBlobs) has(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
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
func (s *smallBlobs) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if b, ok := s.blobs[desc.Digest]; ok {
		return memBlob{bytes.NewReader(b)}, nil
	}
	if images.IsIndex(desc.MediaType) || images.IsManifest(desc.MediaType) || images.IsConfig(desc.MediaType) {
		b, err := s.load(ctx, desc, images.MaxConfigSize)
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
