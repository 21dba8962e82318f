// Package schema is the metadata database's bucket layout, shared by package
// metadata and the rooms below it (metadata/collect, metadata/snapshotter):
// the bucket and key names drawn in metadata/doc.go, walking to a bucket,
// bbolt's errors translated to errdefs, and the few record operations more
// than one room needs (removing an ingest or a snapshot record, the
// context's lease, a lease's resources and expiry). It imports nothing of
// strata's but labels and leases (the context key), so every room
// can use it.
package schema

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
)

// Version is the schema version this code writes.
const Version = 1

// Bucket and key names; metadata/doc.go draws where each sits.
var (
	V1          = []byte("v1")
	KeyVersion  = []byte("version")
	Labels      = []byte("labels")
	Content     = []byte("content")
	Blob        = []byte("blob")
	Ingests     = []byte("ingests")
	Images      = []byte("images")
	Containers  = []byte("containers")
	Leases      = []byte("leases")
	Snapshots   = []byte("snapshots")
	Target      = []byte("target")
	Annotations = []byte("annotations")
	Children    = []byte("children")
	CreatedAt   = []byte("createdat")
	UpdatedAt   = []byte("updatedat")
	Size        = []byte("size")
	Digest      = []byte("digest")
	MediaType   = []byte("mediatype")
	Ref         = []byte("ref")
	Expected    = []byte("expected")
	Name        = []byte("name")
	Parent      = []byte("parent")
	Snapshotter = []byte("snapshotter")
	SnapshotKey = []byte("snapshotkey")
)

// Bucket walks down from the root bucket; nil when any level is missing.
func Bucket(tx *bolt.Tx, path ...[]byte) *bolt.Bucket {
	b := tx.Bucket(path[0])
	for _, p := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(p)
	}
	return b
}

// CreateBucket walks down from the root bucket, creating what is missing.
func CreateBucket(tx *bolt.Tx, path ...[]byte) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(path[0])
	if err != nil {
		return nil, err
	}
	for _, p := range path[1:] {
		if b, err = b.CreateBucketIfNotExists(p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// NS walks down from the namespace's bucket, v1/<ns>; nil when any level is
// missing.
func NS(tx *bolt.Tx, ns string, path ...[]byte) *bolt.Bucket {
	return Bucket(tx, append([][]byte{V1, []byte(ns)}, path...)...)
}

// CreateNS walks down from the namespace's bucket, creating what is missing.
func CreateNS(tx *bolt.Tx, ns string, path ...[]byte) (*bolt.Bucket, error) {
	return CreateBucket(tx, append([][]byte{V1, []byte(ns)}, path...)...)
}

// Root returns the v1 bucket, whose child buckets are the namespaces.
func Root(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(V1) }

// IsBucketNotFound reports whether err is bbolt's missing bucket.
func IsBucketNotFound(err error) bool { return errors.Is(err, berrors.ErrBucketNotFound) }

// Translate maps bbolt's errors onto errdefs where they enter.
func Translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrBucketExists):
		return fmt.Errorf("%w: %w", err, errdefs.ErrAlreadyExists)
	case errors.Is(err, berrors.ErrBucketNotFound):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, berrors.ErrKeyTooLarge), errors.Is(err, berrors.ErrValueTooLarge), errors.Is(err, berrors.ErrKeyRequired):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}

// ForEachLease calls fn with the bucket of each of the namespace's leases.
func ForEachLease(tx *bolt.Tx, ns string, fn func(*bolt.Bucket) error) error {
	lsb := NS(tx, ns, Leases)
	if lsb == nil {
		return nil
	}
	return lsb.ForEachBucket(func(k []byte) error { return fn(lsb.Bucket(k)) })
}

// ForEachResource calls fn for each resource a lease bucket holds, typed
// as containerd's lease API names them ("content", "ingests",
// "snapshots/<snapshotter>").
func ForEachResource(lb *bolt.Bucket, fn func(typ, id string)) {
	each := func(b *bolt.Bucket, typ string) {
		if b == nil {
			return
		}
		_ = b.ForEach(func(k, v []byte) error {
			fn(typ, string(k))
			return nil
		})
	}
	each(lb.Bucket(Content), "content")
	each(lb.Bucket(Ingests), "ingests")
	if sb := lb.Bucket(Snapshots); sb != nil {
		_ = sb.ForEachBucket(func(k []byte) error {
			each(sb.Bucket(k), "snapshots/"+string(k))
			return nil
		})
	}
}

// Expired reports whether a lease's containerd.io/gc.expire label has
// passed. An unparsable label is refused when the lease is created; here
// it never expires.
func Expired(labels map[string]string, now time.Time) bool {
	v, ok := labels[lbl.GCExpire]
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && now.After(t)
}

// RemoveIngestRecord deletes the namespace's ingest record ref and drops
// it from every lease of the namespace.
func RemoveIngestRecord(tx *bolt.Tx, ns, ref string) error {
	if ib := NS(tx, ns, Content, Ingests); ib != nil && ib.Bucket([]byte(ref)) != nil {
		if err := ib.DeleteBucket([]byte(ref)); err != nil {
			return err
		}
	}
	return ForEachLease(tx, ns, func(lb *bolt.Bucket) error {
		if rb := lb.Bucket(Ingests); rb != nil {
			return rb.Delete([]byte(ref))
		}
		return nil
	})
}

// RemoveSnapshotRecord deletes the record key from a snapshotter's bucket
// (v1/<ns>/snapshots/<snapshotter>) and unlinks it from its parent's
// children.
func RemoveSnapshotRecord(sb *bolt.Bucket, key string) error {
	b := sb.Bucket([]byte(key))
	if b == nil {
		return nil
	}
	if p := b.Get(Parent); len(p) > 0 {
		if pb := sb.Bucket(p); pb != nil {
			if cb := pb.Bucket(Children); cb != nil {
				if err := cb.Delete([]byte(key)); err != nil {
					return err
				}
			}
		}
	}
	return sb.DeleteBucket([]byte(key))
}

// ContextLease returns the bucket of the context's lease in namespace ns,
// nil when the context has none; it fails with errdefs.ErrNotFound when the
// lease does not exist.
func ContextLease(ctx context.Context, tx *bolt.Tx, ns string) (*bolt.Bucket, error) {
	id, ok := leases.FromContext(ctx)
	if !ok {
		return nil, nil
	}
	lb := NS(tx, ns, Leases, []byte(id))
	if lb == nil {
		return nil, fmt.Errorf("lease %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
	}
	return lb, nil
}
