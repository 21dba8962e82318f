package metadata

import (
	"context"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/metadata/fsck"
	"github.com/strata-oci/strata/metadata/internal/schema"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
)

// FsckReport, Problem and Ingest are what fsck finds; see package
// metadata/fsck.
type (
	FsckReport = fsck.Report
	Problem    = fsck.Problem
	Ingest     = fsck.Ingest
)

// Fsck runs fsck.Check over the blobs and the records of every namespace
// (see fsck.Check for what it verifies and repairs), and schedules a
// collection when it removed images, to free their blobs.
func (db *DB) Fsck(ctx context.Context, repair bool) (FsckReport, error) {
	rep, err := fsck.Check(ctx, db.backend, fsckRecords{db}, repair)
	for _, p := range rep.Problems {
		if p.Kind == "bad-manifest" && p.Repaired {
			db.scheduleGC()
			break
		}
	}
	return rep, err
}

// fsckRecords is the database as fsck reads and mends it.
type fsckRecords struct{ db *DB }

var _ fsck.Records = fsckRecords{}

func (r fsckRecords) BlobRecords(ctx context.Context) ([]fsck.BlobRecord, error) {
	var out []fsck.BlobRecord
	err := r.db.view(func(tx *bolt.Tx) error {
		return schema.Root(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil {
				_ = bb.ForEachBucket(func(k []byte) error {
					out = append(out, fsck.BlobRecord{Namespace: ns, Digest: digest.Digest(k), Size: boltutil.ReadInt(bb.Bucket(k), keySize)})
					return nil
				})
			}
			return ctx.Err()
		})
	})
	return out, err
}

func (r fsckRecords) IngestRecords(ctx context.Context) ([]fsck.IngestRecord, error) {
	var out []fsck.IngestRecord
	err := r.db.view(func(tx *bolt.Tx) error {
		return schema.Root(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if ib := nsBucket(tx, ns, bucketContent, bucketIngests); ib != nil {
				_ = ib.ForEachBucket(func(k []byte) error {
					b := ib.Bucket(k)
					out = append(out, fsck.IngestRecord{Namespace: ns, Ref: string(k), BackendRef: string(b.Get(keyRef)), Expected: digest.Digest(b.Get(keyExpected))})
					return nil
				})
			}
			return ctx.Err()
		})
	})
	return out, err
}

func (r fsckRecords) Images(ctx context.Context) ([]fsck.ImageRecord, error) {
	var out []fsck.ImageRecord
	err := r.db.view(func(tx *bolt.Tx) error {
		return schema.Root(tx).ForEachBucket(func(nsk []byte) error {
			ib := nsBucket(tx, string(nsk), bucketImages)
			if ib == nil {
				return nil
			}
			return ib.ForEachBucket(func(k []byte) error {
				out = append(out, fsck.ImageRecord{Namespace: string(nsk), Image: readImage(string(k), ib.Bucket(k))})
				return nil
			})
		})
	})
	return out, err
}

// Exclusive holds the database's GC lock for writing: no write transaction
// runs until fn returns.
func (r fsckRecords) Exclusive(fn func() error) error {
	r.db.wlock.Lock()
	defer r.db.wlock.Unlock()
	return fn()
}

func (r fsckRecords) ImageTarget(ns, name string) (digest.Digest, error) {
	var target digest.Digest
	err := r.db.view(func(tx *bolt.Tx) error {
		if b := nsBucket(tx, ns, bucketImages, []byte(name), bucketTarget); b != nil {
			target = digest.Digest(b.Get(keyDigest))
		}
		return nil
	})
	return target, err
}

func (r fsckRecords) RemoveBlobRecord(ns string, dgst digest.Digest) error {
	return r.db.updateHeld(func(tx *bolt.Tx) error {
		if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil && bb.Bucket([]byte(dgst)) != nil {
			return bb.DeleteBucket([]byte(dgst))
		}
		return nil
	})
}

func (r fsckRecords) RemoveIngestRecord(ns, ref string) error {
	return r.db.updateHeld(func(tx *bolt.Tx) error { return schema.RemoveIngestRecord(tx, ns, ref) })
}

func (r fsckRecords) RemoveImage(ns, name string) error {
	return r.db.updateHeld(func(tx *bolt.Tx) error {
		ib := nsBucket(tx, ns, bucketImages)
		if ib == nil || ib.Bucket([]byte(name)) == nil {
			return nil
		}
		return ib.DeleteBucket([]byte(name))
	})
}
