package metadata

import (
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
