package metadata

import (
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/metadata/internal/schema"
)

// The bucket layout lives in metadata/internal/schema, shared with the rooms
// below this package; these are its names as this package spells them.
const schemaVersion = schema.Version

var (
	bucketV1        = schema.V1
	keyVersion      = schema.KeyVersion
	bucketLabels    = schema.Labels
	bucketContent   = schema.Content
	bucketBlob      = schema.Blob
	bucketIngests   = schema.Ingests
	bucketImages    = schema.Images
	bucketLeases    = schema.Leases
	bucketSnapshots = schema.Snapshots
	bucketTarget    = schema.Target
	bucketAnnots    = schema.Annotations
	bucketChildren  = schema.Children
	keyCreatedAt    = schema.CreatedAt
	keyUpdatedAt    = schema.UpdatedAt
	keySize         = schema.Size
	keyDigest       = schema.Digest
	keyMediaType    = schema.MediaType
	keyRef          = schema.Ref
	keyExpected     = schema.Expected
	keyName         = schema.Name
	keyParent       = schema.Parent
)

func nsBucket(tx *bolt.Tx, ns string, path ...[]byte) *bolt.Bucket { return schema.NS(tx, ns, path...) }

func createNSBucket(tx *bolt.Tx, ns string, path ...[]byte) (*bolt.Bucket, error) {
	return schema.CreateNS(tx, ns, path...)
}
