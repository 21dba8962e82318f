package metadata

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/images"
)

// fsck reads every image's graph to report the images whose indexes or
// manifests cannot be parsed; garbage collection never does (it follows
// labels only, see gc.go).

type childCache struct {
	mu sync.Mutex
	m  map[digest.Digest][]ocispec.Descriptor
}

// childrenOf returns what manifest or index desc refers to; blobs are
// immutable, so answers are cached. A blob that is not there (a platform
// never fetched) has no children. Any other failure is returned and not
// cached; walkImage decides what it means.
func (db *DB) childrenOf(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsIndex(desc.MediaType) && !images.IsManifest(desc.MediaType) {
		return nil, nil
	}
	db.children.mu.Lock()
	c, ok := db.children.m[desc.Digest]
	db.children.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := images.Children(ctx, db.backend, desc)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	db.children.mu.Lock()
	db.children.m[desc.Digest] = c
	db.children.mu.Unlock()
	return c, nil
}

// unreadableGraph reports whether err, from reading the index or manifest
// of an image, says the blob cannot be parsed (or is too large to be one):
// a fault of the data, which any client can write, as opposed to a fault of
// the store (I/O) that GC must not read as "names nothing".
func unreadableGraph(err error) bool {
	return errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrDataLoss)
}

// walkImage calls visit for target and every descriptor its indexes and
// manifests name, each once. An index or manifest that cannot be parsed is
// visited, not descended, and reported to unreadable; any other failure
// (I/O, cancellation) is returned.
func (db *DB) walkImage(ctx context.Context, target ocispec.Descriptor, visit func(ocispec.Descriptor), unreadable func(ocispec.Descriptor, error)) error {
	queue := []ocispec.Descriptor{target}
	seen := map[digest.Digest]bool{}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := queue[0]
		queue = queue[1:]
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		visit(d)
		children, err := db.childrenOf(ctx, d)
		if err != nil {
			if !unreadableGraph(err) {
				return fmt.Errorf("read %s %s: %w", d.MediaType, d.Digest, err)
			}
			unreadable(d, err)
			continue
		}
		queue = append(queue, children...)
	}
	return nil
}

// UnreadableImage is an image whose graph cannot be read to its end: an
// index or manifest in it cannot be parsed.
type UnreadableImage struct {
	Namespace string
	Name      string
	// Digest is the index or manifest that cannot be parsed.
	Digest digest.Digest
	// Err says why (errdefs.ErrInvalidArgument or errdefs.ErrDataLoss).
	Err error
}

// UnreadableImages lists, across namespaces, the images whose graph cannot
// be read (one entry per blob that cannot be parsed), for fsck. GC does not
// read manifests: it keeps such a blob and what its labels
// (containerd.io/gc.ref.*) reach, like any other; what only the unparsable
// body names is not kept. Removing the image, or restoring the blob, ends
// that. It returns I/O errors as they are.
func (db *DB) UnreadableImages(ctx context.Context) ([]UnreadableImage, error) {
	type img struct {
		ns, name string
		target   ocispec.Descriptor
	}
	var all []img
	err := db.view(func(tx *bolt.Tx) error {
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ib := nsBucket(tx, string(nsk), bucketImages)
			if ib == nil {
				return nil
			}
			return ib.ForEachBucket(func(k []byte) error {
				all = append(all, img{string(nsk), string(k), readImage(string(k), ib.Bucket(k)).Target})
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	var out []UnreadableImage
	for _, im := range all {
		err := db.walkImage(ctx, im.target, func(ocispec.Descriptor) {}, func(d ocispec.Descriptor, err error) {
			out = append(out, UnreadableImage{Namespace: im.ns, Name: im.name, Digest: d.Digest, Err: err})
		})
		if err != nil {
			return out, fmt.Errorf("image %q in namespace %q: %w", im.name, im.ns, err)
		}
	}
	return out, nil
}
