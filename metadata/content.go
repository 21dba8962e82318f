package metadata

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// ContentStore is the namespaced content store: blobs and ingests visible in
// the context's namespace, with their labels; the bytes live in the backend.
type ContentStore struct{ db *DB }

var _ content.Store = (*ContentStore)(nil)

// ContentStore returns the namespaced content store.
func (db *DB) ContentStore() *ContentStore { return &ContentStore{db: db} }

func readInfo(dgst digest.Digest, b *bolt.Bucket) content.Info {
	return content.Info{
		Digest:    dgst,
		Size:      boltutil.ReadInt(b, keySize),
		CreatedAt: boltutil.ReadTime(b, keyCreatedAt),
		UpdatedAt: boltutil.ReadTime(b, keyUpdatedAt),
		Labels:    boltutil.ReadMap(b, bucketLabels),
	}
}

func validDigest(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Info returns the blob dgst as the namespace sees it.
func (s *ContentStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Info{}, err
	}
	if err := validDigest(dgst); err != nil {
		return content.Info{}, err
	}
	var info content.Info
	err = s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContent, bucketBlob, []byte(dgst))
		if b == nil {
			return fmt.Errorf("content %s in namespace %q: %w", dgst, ns, errdefs.ErrNotFound)
		}
		info = readInfo(dgst, b)
		return nil
	})
	return info, err
}

// Update changes the labels of blob info.Digest.
func (s *ContentStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Info{}, err
	}
	if err := validDigest(info.Digest); err != nil {
		return content.Info{}, err
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var out content.Info
	err = s.db.update(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContent, bucketBlob, []byte(info.Digest))
		if b == nil {
			return fmt.Errorf("content %s in namespace %q: %w", info.Digest, ns, errdefs.ErrNotFound)
		}
		labels, err := lbl.Update(boltutil.ReadMap(b, bucketLabels), info.Labels, fieldpaths)
		if err != nil {
			return fmt.Errorf("update content %s: %w", info.Digest, err)
		}
		if err := boltutil.ReplaceMap(b, bucketLabels, labels); err != nil {
			return err
		}
		if err := boltutil.PutTime(b, keyUpdatedAt, time.Now()); err != nil {
			return err
		}
		out = readInfo(info.Digest, b)
		return nil
	})
	return out, err
}

// Walk calls fn for each blob of the namespace matching any of fs.
func (s *ContentStore) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return err
	}
	var infos []content.Info
	err = s.db.view(func(tx *bolt.Tx) error {
		bb := nsBucket(tx, ns, bucketContent, bucketBlob)
		if bb == nil {
			return nil
		}
		return bb.ForEachBucket(func(k []byte) error {
			info := readInfo(digest.Digest(k), bb.Bucket(k))
			if filter.Match(content.AdaptInfo(info)) {
				infos = append(infos, info)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	// fn runs outside the transaction so that it may use the store.
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the namespace's record of blob dgst; the bytes are freed by
// the garbage collection this schedules, once no namespace refers to them.
func (s *ContentStore) Delete(ctx context.Context, dgst digest.Digest) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	if err := validDigest(dgst); err != nil {
		return err
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		bb := nsBucket(tx, ns, bucketContent, bucketBlob)
		if bb == nil || bb.Bucket([]byte(dgst)) == nil {
			return fmt.Errorf("content %s in namespace %q: %w", dgst, ns, errdefs.ErrNotFound)
		}
		return bb.DeleteBucket([]byte(dgst))
	})
	if err == nil {
		s.db.scheduleGC()
	}
	return err
}

// ReaderAt opens blob desc.Digest when the namespace can see it.
func (s *ContentStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if _, err := s.Info(ctx, desc.Digest); err != nil {
		return nil, err
	}
	return s.db.backend.ReaderAt(ctx, desc)
}

func backendRef(ns, ref string) string { return ns + "/" + ref }

// Status returns the state of the namespace's ingest ref.
func (s *ContentStore) Status(ctx context.Context, ref string) (content.Status, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Status{}, err
	}
	var bref string
	var expected digest.Digest
	err = s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContent, bucketIngests, []byte(ref))
		if b == nil {
			return fmt.Errorf("ingest %q in namespace %q: %w", ref, ns, errdefs.ErrNotFound)
		}
		bref = string(b.Get(keyRef))
		expected = digest.Digest(b.Get(keyExpected))
		return nil
	})
	if err != nil {
		return content.Status{}, err
	}
	st, err := s.db.backend.Status(ctx, bref)
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest %q in namespace %q: %w", ref, ns, err)
	}
	st.Ref = ref
	st.Expected = expected
	return st, nil
}

// ListStatuses returns the namespace's ingests matching any of fs.
func (s *ContentStore) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return nil, err
	}
	var refs []string
	err = s.db.view(func(tx *bolt.Tx) error {
		ib := nsBucket(tx, ns, bucketContent, bucketIngests)
		if ib == nil {
			return nil
		}
		return ib.ForEachBucket(func(k []byte) error {
			refs = append(refs, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var out []content.Status
	for _, ref := range refs {
		st, err := s.Status(ctx, ref)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				continue // committed or aborted meanwhile
			}
			return nil, err
		}
		if filter.Match(content.AdaptStatus(st)) {
			out = append(out, st)
		}
	}
	return out, nil
}

// Abort drops the namespace's ingest ref and its data, even while a writer
// holds it, as containerd's does: that writer's Commit fails.
func (s *ContentStore) Abort(ctx context.Context, ref string) error {
	return s.abort(ctx, ref, true)
}

// AbortIdle is Abort for an ingest no writer holds: one that a writer holds
// is left alone, with errdefs.ErrUnavailable. strata's own cleanups use it
// (a pull dropping its partial downloads must not drop the one another
// pull has taken over).
func (s *ContentStore) AbortIdle(ctx context.Context, ref string) error {
	return s.abort(ctx, ref, false)
}

func (s *ContentStore) abort(ctx context.Context, ref string, held bool) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	s.db.wlock.RLock()
	defer s.db.wlock.RUnlock()
	var bref string
	err = s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContent, bucketIngests, []byte(ref))
		if b == nil {
			return fmt.Errorf("ingest %q in namespace %q: %w", ref, ns, errdefs.ErrNotFound)
		}
		bref = string(b.Get(keyRef))
		return nil
	})
	if err != nil {
		return err
	}
	err = s.db.backend.Abort(ctx, bref)
	if errors.Is(err, errdefs.ErrUnavailable) && !held {
		return fmt.Errorf("abort ingest %q: a writer holds it: %w", ref, err)
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		// A writer holds it: containerd's Abort succeeds all the same
		// (the writer's Commit then fails), and clients rely on it.
		if h, ok := s.db.backend.(heldAborter); ok {
			err = h.AbortHeld(ctx, bref)
		}
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	return s.db.updateHeld(func(tx *bolt.Tx) error {
		return schema.RemoveIngestRecord(tx, ns, ref)
	})
}

// heldAborter is the optional backend method that removes an ingest a
// writer holds (content/local has it).
type heldAborter interface {
	AbortHeld(ctx context.Context, ref string) error
}

func addLeaseResource(lb *bolt.Bucket, kind []byte, key string) error {
	if lb == nil {
		return nil
	}
	rb, err := lb.CreateBucketIfNotExists(kind)
	if err != nil {
		return err
	}
	return rb.Put([]byte(key), nil)
}

// createBlobRecord records blob dgst in namespace ns (and the context's
// lease). It returns errdefs.ErrAlreadyExists when the record exists; the
// lease still gets the blob then.
func createBlobRecord(ctx context.Context, tx *bolt.Tx, ns string, dgst digest.Digest, size int64, labels map[string]string) error {
	lb, err := schema.ContextLease(ctx, tx, ns)
	if err != nil {
		return err
	}
	if err := addLeaseResource(lb, bucketContent, dgst.String()); err != nil {
		return err
	}
	bb, err := createNSBucket(tx, ns, bucketContent, bucketBlob)
	if err != nil {
		return err
	}
	if bb.Bucket([]byte(dgst)) != nil {
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	b, err := bb.CreateBucket([]byte(dgst))
	if err != nil {
		return err
	}
	now := time.Now()
	if err := boltutil.PutTime(b, keyCreatedAt, now); err != nil {
		return err
	}
	if err := boltutil.PutTime(b, keyUpdatedAt, now); err != nil {
		return err
	}
	if err := boltutil.PutInt(b, keySize, size); err != nil {
		return err
	}
	return boltutil.PutMap(b, bucketLabels, labels)
}

// Writer opens the namespace's ingest named by content.WithRef. It returns
// errdefs.ErrAlreadyExists when the namespace has the blob the descriptor
// names. When the blob is on disk and the sharing policy lets the namespace
// have it (see SharingPolicy), the writer is complete at once (offset =
// total = size) and its Commit adds the blob to the namespace, no bytes
// read: as containerd's shared policy.
func (s *ContentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	wo, err := content.ParseWriterOpts(opts...)
	if err != nil {
		return nil, err
	}
	if wo.Desc.Digest != "" {
		if err := validDigest(wo.Desc.Digest); err != nil {
			return nil, err
		}
	}
	if _, ok := leases.FromContext(ctx); ok {
		// Fail before any ingest exists for a lease that does not.
		if err := s.db.view(func(tx *bolt.Tx) error { _, err := schema.ContextLease(ctx, tx, ns); return err }); err != nil {
			return nil, err
		}
	}
	backendDesc := wo.Desc
	if wo.Desc.Digest != "" {
		own, share, size, err := s.existing(ctx, ns, wo.Desc)
		if err != nil {
			return nil, err
		}
		if own {
			return nil, fmt.Errorf("content %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
		}
		if share {
			wo.Desc.Size = size
			return &sharedWriter{s: s, ns: ns, ref: wo.Ref, desc: wo.Desc, started: time.Now(), ctx: context.WithoutCancel(ctx)}, nil
		}
		if s.db.opts.sharing == SharingIsolated {
			// The bytes must come from this writer even though the blob
			// is on disk: the backend checks them against the digest at
			// commit, then keeps the copy it has.
			backendDesc.Digest = ""
		}
	}
	return s.openIngest(ctx, ns, wo.Ref, backendDesc, wo.Desc.Digest)
}

// openIngest opens (or resumes) the backend ingest of the namespace's ref
// and records it in the namespace and the context's lease.
func (s *ContentStore) openIngest(ctx context.Context, ns, ref string, backendDesc ocispec.Descriptor, expected digest.Digest) (content.Writer, error) {
	// Not under the GC lock: resuming rehashes what was written, maybe
	// gigabytes, and GC leaves an ingest alone while a writer holds it.
	bref := backendRef(ns, ref)
	bw, err := s.db.backend.Writer(ctx, content.WithRef(bref), content.WithDescriptor(backendDesc))
	if err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// Committed by someone else between our check and now.
			return s.Writer(ctx, content.WithRef(ref), content.WithDescriptor(ocispec.Descriptor{Digest: expected, Size: backendDesc.Size}))
		}
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		lb, err := schema.ContextLease(ctx, tx, ns)
		if err != nil {
			return err
		}
		if err := addLeaseResource(lb, bucketIngests, ref); err != nil {
			return err
		}
		ib, err := createNSBucket(tx, ns, bucketContent, bucketIngests, []byte(ref))
		if err != nil {
			return err
		}
		if err := ib.Put(keyRef, []byte(bref)); err != nil {
			return err
		}
		if expected != "" {
			return ib.Put(keyExpected, []byte(expected))
		}
		return nil
	})
	if err != nil {
		bw.Close()
		return nil, err
	}
	return &namespacedWriter{Writer: bw, db: s.db, ns: ns, ref: ref, expected: expected}, nil
}

// existing reports whether namespace ns has blob desc (own) or may share
// the copy on disk (share), of size bytes. A record whose blob is not on
// disk (lost) is neither: the writer writes it again. A stored size other
// than desc's is errdefs.ErrFailedPrecondition.
func (s *ContentStore) existing(ctx context.Context, ns string, desc ocispec.Descriptor) (own, share bool, size int64, err error) {
	info, err := s.db.backend.Info(ctx, desc.Digest)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return false, false, 0, nil
		}
		return false, false, 0, err
	}
	if desc.Size > 0 && info.Size != desc.Size {
		return false, false, 0, fmt.Errorf("content %s: stored size %d differs from expected %d: %w", desc.Digest, info.Size, desc.Size, errdefs.ErrFailedPrecondition)
	}
	err = s.db.view(func(tx *bolt.Tx) error {
		own = nsBucket(tx, ns, bucketContent, bucketBlob, []byte(desc.Digest)) != nil
		share = !own && s.db.mayShare(tx, ns, desc.Digest)
		return nil
	})
	return own, share, info.Size, err
}

// preparer is the optional first half of a backend commit: verify and make
// durable, without publishing (content/local's writer has it).
type preparer interface {
	Prepare(ctx context.Context, size int64, expected digest.Digest) (digest.Digest, error)
}

type namespacedWriter struct {
	content.Writer
	db       *DB
	ns       string
	ref      string
	expected digest.Digest
}

func (w *namespacedWriter) Status() (content.Status, error) {
	st, err := w.Writer.Status()
	st.Ref = w.ref
	st.Expected = w.expected
	return st, err
}

// Commit verifies the data, publishes the blob and records it in the
// namespace (and the context's lease), all under the GC read lock.
func (w *namespacedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return err
	}
	if expected == "" {
		expected = w.expected
	}
	st, err := w.Writer.Status()
	if err != nil {
		return err
	}
	// Verify and fsync outside the GC lock; only the rename and the record
	// need to be atomic with respect to GC.
	var actual digest.Digest
	if p, ok := w.Writer.(preparer); ok {
		if actual, err = p.Prepare(ctx, size, expected); err != nil {
			return err
		}
	}
	w.db.wlock.RLock()
	defer w.db.wlock.RUnlock()
	if err := w.Writer.Commit(ctx, size, expected); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	if actual == "" {
		// Committed: the digest of what was written is final.
		if actual = w.Writer.Digest(); actual == "" {
			return fmt.Errorf("commit ingest %q: backend lost the digest", w.ref)
		}
	}
	var exists error
	err = w.db.updateHeld(func(tx *bolt.Tx) error {
		if err := schema.RemoveIngestRecord(tx, w.ns, w.ref); err != nil {
			return err
		}
		err := createBlobRecord(ctx, tx, w.ns, actual, st.Offset, base.Labels)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			exists, err = err, nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return exists
}
