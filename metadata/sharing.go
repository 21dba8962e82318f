package metadata

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata/internal/schema"

	lbl "github.com/strata-oci/strata/labels"
)

// SharingPolicy says whether a namespace may get a blob another namespace
// has without writing its bytes (containerd's content_sharing_policy).
type SharingPolicy int

const (
	// SharingShared (the default, as containerd's): opening a writer for a
	// blob on disk returns a writer that is complete already; its Commit
	// adds the blob to the namespace, no bytes sent.
	SharingShared SharingPolicy = iota
	// SharingIsolated: a namespace writes the bytes of every blob itself
	// (they are verified, then the stored copy is used), but for blobs a
	// namespace labelled containerd.io/namespace.shareable=true has.
	SharingIsolated
)

// ParseSharingPolicy reads "shared" (or "") and "isolated".
func ParseSharingPolicy(s string) (SharingPolicy, error) {
	switch s {
	case "", "shared":
		return SharingShared, nil
	case "isolated":
		return SharingIsolated, nil
	}
	return 0, fmt.Errorf("content sharing policy %q: want shared or isolated: %w", s, errdefs.ErrInvalidArgument)
}

func (p SharingPolicy) String() string {
	if p == SharingIsolated {
		return "isolated"
	}
	return "shared"
}

// WithSharingPolicy sets how blobs are shared across namespaces.
func WithSharingPolicy(p SharingPolicy) Opt {
	return func(o *options) error {
		if p != SharingShared && p != SharingIsolated {
			return fmt.Errorf("content sharing policy %d: %w", p, errdefs.ErrInvalidArgument)
		}
		o.sharing = p
		return nil
	}
}

// mayShare reports whether namespace ns may get blob dgst without writing
// it: always under the shared policy; under the isolated one when a
// shareable namespace has it.
func (db *DB) mayShare(tx *bolt.Tx, ns string, dgst digest.Digest) bool {
	if db.opts.sharing == SharingShared {
		return true
	}
	found := false
	_ = schema.Root(tx).ForEachBucket(func(nsk []byte) error {
		if found || string(nsk) == ns {
			return nil
		}
		if lb := schema.Root(tx).Bucket(nsk).Bucket(bucketLabels); lb == nil || string(lb.Get([]byte(lbl.NamespaceShareable))) != "true" {
			return nil
		}
		if nsBucket(tx, string(nsk), bucketContent, bucketBlob, []byte(dgst)) != nil {
			found = true
		}
		return nil
	})
	return found
}

// sharedWriter is the writer of a blob that is on disk already: complete
// from the start (offset = total = size), its Commit only records the blob
// in the namespace. Writing to it (or truncating it) turns it into an
// ordinary ingest that starts with the blob's bytes, as containerd's does:
// a client may append to what it resumed.
type sharedWriter struct {
	s       *ContentStore
	ns, ref string
	desc    ocispec.Descriptor
	started time.Time
	// ctx is the one Writer was called with: Write and Truncate, which
	// have none, open the ingest under its namespace and lease.
	ctx context.Context
	w   content.Writer
}

// materialize turns the shared blob into an ingest of this namespace
// holding its first n bytes (what a Write after them, or a Truncate to n,
// needs): a client that starts over from 0 costs no copy of the blob.
func (w *sharedWriter) materialize(n int64) error {
	if w.w != nil {
		return nil
	}
	nw, err := w.s.openIngest(w.ctx, w.ns, w.ref, ocispec.Descriptor{Size: w.desc.Size}, "")
	if err != nil {
		return err
	}
	ra, err := w.s.db.backend.ReaderAt(w.ctx, w.desc)
	if err != nil {
		nw.Close()
		return fmt.Errorf("ingest %q: copy of %s: %w", w.ref, w.desc.Digest, err)
	}
	defer ra.Close()
	if err := nw.Truncate(0); err != nil {
		nw.Close()
		return err
	}
	if _, err := io.Copy(nw, io.NewSectionReader(ra, 0, min(n, ra.Size()))); err != nil {
		nw.Close()
		return fmt.Errorf("ingest %q: copy of %s: %w", w.ref, w.desc.Digest, err)
	}
	w.w = nw
	return nil
}

func (w *sharedWriter) Write(p []byte) (int, error) {
	if err := w.materialize(w.desc.Size); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

func (w *sharedWriter) Truncate(size int64) error {
	if w.w == nil && size == w.desc.Size {
		return nil
	}
	if w.w == nil {
		return w.materialize(size)
	}
	return w.w.Truncate(size)
}

func (w *sharedWriter) Close() error {
	if w.w != nil {
		return w.w.Close()
	}
	return nil
}

func (w *sharedWriter) Digest() digest.Digest {
	if w.w != nil {
		return w.w.Digest()
	}
	return w.desc.Digest
}

func (w *sharedWriter) Status() (content.Status, error) {
	if w.w != nil {
		return w.w.Status()
	}
	return content.Status{Ref: w.ref, Offset: w.desc.Size, Total: w.desc.Size, Expected: w.desc.Digest,
		StartedAt: w.started, UpdatedAt: w.started}, nil
}

// Commit records the blob in the namespace (and the context's lease). It
// returns errdefs.ErrFailedPrecondition when size or expected are not the
// blob's, errdefs.ErrNotFound when the blob was collected since the writer
// was opened, errdefs.ErrAlreadyExists when the namespace has it.
func (w *sharedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if w.w != nil {
		return w.w.Commit(ctx, size, expected, opts...)
	}
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return err
	}
	if size > 0 && size != w.desc.Size {
		return fmt.Errorf("commit ingest %q: wrote %d bytes, expected %d: %w", w.ref, w.desc.Size, size, errdefs.ErrFailedPrecondition)
	}
	if expected != "" && expected != w.desc.Digest {
		return fmt.Errorf("commit ingest %q: content has digest %s, expected %s: %w", w.ref, w.desc.Digest, expected, errdefs.ErrFailedPrecondition)
	}
	w.s.db.wlock.RLock()
	defer w.s.db.wlock.RUnlock()
	if _, err := w.s.db.backend.Info(ctx, w.desc.Digest); err != nil {
		return fmt.Errorf("commit ingest %q: %s: %w", w.ref, w.desc.Digest, err)
	}
	return w.s.db.updateHeld(func(tx *bolt.Tx) error {
		return createBlobRecord(ctx, tx, w.ns, w.desc.Digest, w.desc.Size, base.Labels)
	})
}
