package metadata

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// Schema version written by this code; see migrations.
const schemaVersion = 1

var (
	bucketV1        = []byte("v1")
	keyVersion      = []byte("version")
	bucketLabels    = []byte("labels")
	bucketContent   = []byte("content")
	bucketBlob      = []byte("blob")
	bucketIngests   = []byte("ingests")
	bucketImages    = []byte("images")
	bucketLeases    = []byte("leases")
	bucketSnapshots = []byte("snapshots")
	bucketTarget    = []byte("target")
	bucketAnnots    = []byte("annotations")
	bucketChildren  = []byte("children")
	keyCreatedAt    = []byte("createdat")
	keyUpdatedAt    = []byte("updatedat")
	keySize         = []byte("size")
	keyDigest       = []byte("digest")
	keyMediaType    = []byte("mediatype")
	keyRef          = []byte("ref")
	keyExpected     = []byte("expected")
	keyName         = []byte("name")
	keyParent       = []byte("parent")
)

// bucket walks down from the root bucket; nil when any level is missing.
func bucket(tx *bolt.Tx, path ...[]byte) *bolt.Bucket {
	b := tx.Bucket(path[0])
	for _, p := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(p)
	}
	return b
}

// createBucket walks down from the root bucket, creating what is missing.
func createBucket(tx *bolt.Tx, path ...[]byte) (*bolt.Bucket, error) {
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

func nsBucket(tx *bolt.Tx, ns string, path ...[]byte) *bolt.Bucket {
	return bucket(tx, append([][]byte{bucketV1, []byte(ns)}, path...)...)
}

func createNSBucket(tx *bolt.Tx, ns string, path ...[]byte) (*bolt.Bucket, error) {
	return createBucket(tx, append([][]byte{bucketV1, []byte(ns)}, path...)...)
}

func putTime(b *bolt.Bucket, key []byte, t time.Time) error {
	v, err := t.UTC().MarshalBinary()
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

func readTime(b *bolt.Bucket, key []byte) time.Time {
	var t time.Time
	if v := b.Get(key); v != nil {
		_ = t.UnmarshalBinary(v)
	}
	return t
}

func putInt(b *bolt.Bucket, key []byte, n int64) error {
	buf := make([]byte, binary.MaxVarintLen64)
	return b.Put(key, buf[:binary.PutVarint(buf, n)])
}

func readInt(b *bolt.Bucket, key []byte) int64 {
	n, _ := binary.Varint(b.Get(key))
	return n
}

// readLabels copies the labels bucket under b (bbolt's slices die with the
// transaction).
func readLabels(b *bolt.Bucket) map[string]string {
	lb := b.Bucket(bucketLabels)
	if lb == nil {
		return nil
	}
	out := map[string]string{}
	_ = lb.ForEach(func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// writeLabels replaces the labels bucket under b.
func writeLabels(b *bolt.Bucket, labels map[string]string) error {
	if err := b.DeleteBucket(bucketLabels); err != nil && !isBucketNotFound(err) {
		return err
	}
	return putMap(b, bucketLabels, labels)
}

func putMap(b *bolt.Bucket, name []byte, m map[string]string) error {
	if len(m) == 0 {
		return nil
	}
	mb, err := b.CreateBucket(name)
	if err != nil {
		return err
	}
	for k, v := range m {
		if err := mb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

func readMap(b *bolt.Bucket, name []byte) map[string]string {
	mb := b.Bucket(name)
	if mb == nil {
		return nil
	}
	out := map[string]string{}
	_ = mb.ForEach(func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	})
	return out
}

// maxLabelSize bounds a label's key plus value, as containerd does.
const maxLabelSize = 4096

func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if k == "" {
			return fmt.Errorf("label key must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		if len(k)+len(v) > maxLabelSize {
			return fmt.Errorf("label %q: key and value longer than %d bytes: %w", k, maxLabelSize, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// applyLabelPaths updates current with the labels named by fieldpaths
// ("labels" replaces them all, "labels.<key>" sets or removes one key). It
// returns errdefs.ErrInvalidArgument for any other field path.
func applyLabelPaths(current, next map[string]string, fieldpaths []string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range current {
		out[k] = v
	}
	for _, fp := range fieldpaths {
		switch {
		case fp == "labels":
			out = map[string]string{}
			for k, v := range next {
				out[k] = v
			}
		case len(fp) > len("labels.") && fp[:len("labels.")] == "labels.":
			key := fp[len("labels."):]
			if v, ok := next[key]; ok && v != "" {
				out[key] = v
			} else {
				delete(out, key)
			}
		default:
			return nil, fmt.Errorf("field path %q cannot be updated: %w", fp, errdefs.ErrInvalidArgument)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, validateLabels(out)
}
