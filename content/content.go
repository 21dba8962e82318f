// Package content defines the content-addressable blob store: blobs are
// immutable bytes named by their digest, written through resumable ingests that
// are verified against the expected digest and size before they become
// visible.
//
// Store is composed of small interfaces; accept the narrowest one you use:
//
//	Provider      ReaderAt                          read a committed blob
//	Ingester      Writer                            start or resume an ingest
//	IngestManager Status, ListStatuses, Abort       inspect and drop ingests
//	Manager       Info, Update, Walk, Delete        committed blobs and labels
//
// Lifecycle of a write:
//
//	w, err := store.Writer(ctx, content.WithRef("pull-layer-1"), content.WithDescriptor(desc))
//	// errdefs.ErrAlreadyExists: the blob is already there, nothing to write.
//	// errdefs.ErrUnavailable: another writer holds the ref.
//	st, _ := w.Status()          // st.Offset > 0 when resuming: skip that much input
//	io.Copy(w, r)
//	err = w.Commit(ctx, desc.Size, desc.Digest) // verifies, syncs, makes visible
//	w.Close()                    // releases the ref; the ingest stays resumable if not committed
package content

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Labels    map[string]string
}

// Status describes an ingest in progress.
type Status struct {
	Ref       string
	Offset    int64
	Total     int64
	Expected  digest.Digest
	StartedAt time.Time
	UpdatedAt time.Time
}

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Provider opens committed blobs.
type Provider interface {
	// ReaderAt returns errdefs.ErrNotFound when the blob is not in the store.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Ingester starts or resumes ingests.
type Ingester interface {
	// Writer opens the ingest named by WithRef, resuming it when it exists.
	// It returns errdefs.ErrUnavailable when another writer holds the ref and
	// errdefs.ErrAlreadyExists when WithDescriptor names a blob already present.
	Writer(ctx context.Context, opts ...WriterOpt) (Writer, error)
}

// IngestManager inspects and drops ingests.
type IngestManager interface {
	Status(ctx context.Context, ref string) (Status, error)
	// ListStatuses returns the ingests matching any of filters (field: ref).
	ListStatuses(ctx context.Context, filters ...string) ([]Status, error)
	Abort(ctx context.Context, ref string) error
}

// WalkFunc is called for each blob by Walk; returning an error stops the walk.
type WalkFunc func(Info) error

// Manager reads and changes committed blobs.
type Manager interface {
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Update replaces the fields named by fieldpaths ("labels" or
	// "labels.<key>"); with none it replaces all labels.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Walk calls fn for each blob matching any of filters (fields: digest,
	// size, labels.<key>).
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	Delete(ctx context.Context, dgst digest.Digest) error
}

// Store is the whole content store.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// Writer writes one ingest. Bytes written are appended at the current offset.
type Writer interface {
	io.WriteCloser
	// Digest returns the digest of the bytes written so far.
	Digest() digest.Digest
	// Commit verifies size (when > 0) and expected (when set) against what was
	// written and makes the blob visible. It returns
	// errdefs.ErrFailedPrecondition on a mismatch (the ingest stays) and
	// errdefs.ErrAlreadyExists when the blob was already present (the ingest
	// is removed).
	Commit(ctx context.Context, size int64, expected digest.Digest, opts ...Opt) error
	Status() (Status, error)
	// Truncate drops everything after size bytes; only 0 and the current
	// offset are guaranteed to be supported.
	Truncate(size int64) error
}

// Opt sets properties of a blob being committed.
type Opt func(*Info) error

// WithLabels sets labels on the committed blob.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// WriterOpts are the options of Ingester.Writer.
type WriterOpts struct {
	Ref  string
	Desc ocispec.Descriptor
}

// ParseWriterOpts applies opts and checks that they name a ref, as every
// Ingester needs.
func ParseWriterOpts(opts ...WriterOpt) (WriterOpts, error) {
	var wo WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return wo, err
		}
	}
	if wo.Ref == "" {
		return wo, fmt.Errorf("ingest ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	return wo, nil
}

// WriterOpt sets an option of Ingester.Writer.
type WriterOpt func(*WriterOpts) error

// WithRef names the ingest; it is required.
func WithRef(ref string) WriterOpt {
	return func(o *WriterOpts) error { o.Ref = ref; return nil }
}

// WithDescriptor states the expected digest and size of the blob.
func WithDescriptor(desc ocispec.Descriptor) WriterOpt {
	return func(o *WriterOpts) error { o.Desc = desc; return nil }
}
