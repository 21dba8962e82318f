package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
)

// Refetcher returns a content.Provider over cs that also serves the layers
// of the targets discarded after unpacking (images.DiscardedLayers),
// streamed from the registries their manifests came from, without storing
// them: an export of such an image then holds every layer. Nothing is
// fetched before a layer is read; a layer no registry serves fails the
// read, naming it. The reader of the archive verifies the digests.
func Refetcher(ctx context.Context, cs images.InfoManager, r *docker.Resolver, targets []ocispec.Descriptor) (content.Provider, error) {
	from := map[digest.Digest][]string{}
	for _, t := range targets {
		d, err := images.DiscardedLayers(ctx, cs, t)
		if err != nil {
			return nil, err
		}
		for k, v := range d {
			from[k] = append(from[k], v...)
		}
	}
	if len(from) == 0 {
		return cs, nil
	}
	return &refetcher{cs: cs, r: r, from: from}, nil
}

type refetcher struct {
	cs   content.Provider
	r    *docker.Resolver
	from map[digest.Digest][]string
}

func (p *refetcher) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := p.cs.ReaderAt(ctx, desc)
	sources, discarded := p.from[desc.Digest]
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) || !discarded {
		return ra, err
	}
	if len(sources) == 0 || p.r == nil {
		return nil, fmt.Errorf("layer %s: discarded after unpack, and no registry to fetch it again from: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return &remoteBlob{ctx: ctx, p: p, desc: desc, sources: sources}, nil
}

// remoteBlob reads a layer from its registry, one streamed request per
// run of sequential reads.
type remoteBlob struct {
	ctx     context.Context // the ReaderAt call's: ReadAt has none
	p       *refetcher
	desc    ocispec.Descriptor
	sources []string
	mu      sync.Mutex // ReadAt may be called concurrently
	rc      io.ReadCloser
	pos     int64
	// verifier hashes what a read from offset 0 onwards returned: an
	// archive writer streams the layer in order, and a registry's bytes
	// that do not match the digest must not end up in an archive under it.
	verifier digest.Verifier
}

func (b *remoteBlob) Size() int64 { return b.desc.Size }

func (b *remoteBlob) open(off int64) error {
	var errs []error
	for _, s := range b.sources {
		ref, err := reference.Parse(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		repo, err := b.p.r.Repository(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rc, err := repo.OpenBlob(b.ctx, b.desc, off)
		if err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", s, err))
			continue
		}
		b.rc, b.pos = rc, off
		return nil
	}
	return fmt.Errorf("layer %s: discarded after unpack, and not fetched again: %w", b.desc.Digest, errors.Join(errs...))
}

func (b *remoteBlob) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off >= b.desc.Size {
		return 0, io.EOF
	}
	if b.rc == nil || off != b.pos {
		if b.rc != nil {
			b.rc.Close()
			b.rc = nil
		}
		if err := b.open(off); err != nil {
			return 0, err
		}
		b.verifier = nil
		if off == 0 {
			b.verifier = b.desc.Digest.Verifier()
		}
	}
	if rest := b.desc.Size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := io.ReadFull(b.rc, p)
	b.pos += int64(n)
	if b.verifier != nil {
		b.verifier.Write(p[:n])
	}
	if err != nil {
		return n, fmt.Errorf("layer %s from its registry: %w", b.desc.Digest, err)
	}
	if b.pos == b.desc.Size {
		if b.verifier != nil && !b.verifier.Verified() {
			return n, fmt.Errorf("layer %s from its registry: the bytes served do not match the digest: %w", b.desc.Digest, errdefs.ErrDataLoss)
		}
		return n, io.EOF
	}
	return n, nil
}

func (b *remoteBlob) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}
