// Package storage is the bbolt metastore that snapshot drivers keep their
// records in (<driver root>/metadata.db): it maps keys to short numeric ids,
// which name the driver's directories and keep overlay's lowerdir strings
// short, and holds each snapshot's kind, parent, labels, times and children.
//
// Buckets:
//
//	v1
//	  snapshots/<key>
//	    id        -> decimal id, never reused
//	    kind      -> one byte, snapshots.Kind
//	    parent    -> key of the committed parent
//	    createdat, updatedat -> time
//	    size, inodes -> varint (committed snapshots: usage at commit)
//	    labels/<key> -> value
//	    children/<key>
//	  ids/<id> -> key
//
// Drivers make a record and its directory together in one transaction
// (MetaStore.Update): the directory is built under a temporary name and
// renamed into place inside the transaction, so a crash leaves either both
// or a directory no record names, which Cleanup removes.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/snapshots"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

var (
	bucketV1        = []byte("v1")
	bucketSnapshots = []byte("snapshots")
	bucketIDs       = []byte("ids")
	bucketLabels    = []byte("labels")
	bucketChildren  = []byte("children")
	keyID           = []byte("id")
	keyKind         = []byte("kind")
	keyParent       = []byte("parent")
	keyCreatedAt    = []byte("createdat")
	keyUpdatedAt    = []byte("updatedat")
	keySize         = []byte("size")
	keyInodes       = []byte("inodes")
)

// MetaStore is a driver's database of snapshot records.
type MetaStore struct {
	db *bolt.DB
}

// NewMetaStore opens (creating) the metastore at path. It returns
// errdefs.ErrUnavailable when another process holds it.
func NewMetaStore(path string) (*MetaStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("snapshot metastore %s is locked by another process: %w", path, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open snapshot metastore %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		if _, err := v1.CreateBucketIfNotExists(bucketSnapshots); err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketIDs)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("snapshot metastore %s: %w", path, err)
	}
	return &MetaStore{db: db}, nil
}

// Close closes the database.
func (ms *MetaStore) Close() error { return ms.db.Close() }

// Update runs fn in a write transaction; fn's error rolls it back.
func (ms *MetaStore) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ms.db.Update(func(tx *bolt.Tx) error { return fn(newTx(tx)) })
}

// View runs fn in a read transaction.
func (ms *MetaStore) View(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ms.db.View(func(tx *bolt.Tx) error { return fn(newTx(tx)) })
}

// Tx is one transaction on the metastore.
type Tx struct {
	snaps *bolt.Bucket
	ids   *bolt.Bucket
}

func newTx(tx *bolt.Tx) *Tx {
	v1 := tx.Bucket(bucketV1)
	return &Tx{snaps: v1.Bucket(bucketSnapshots), ids: v1.Bucket(bucketIDs)}
}

// Snapshot is what a driver needs to mount a snapshot.
type Snapshot struct {
	ID   string
	Kind snapshots.Kind
	// ParentIDs are the ids of the parent, its parent and so on: nearest
	// first, which is overlay's lowerdir order.
	ParentIDs []string
}

func (tx *Tx) record(key string) (*bolt.Bucket, error) {
	if key == "" {
		return nil, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	b := tx.snaps.Bucket([]byte(key))
	if b == nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return b, nil
}

// Create records a new snapshot key of kind (active or view) on parent and
// returns it with a new id. It returns errdefs.ErrAlreadyExists when key
// exists, errdefs.ErrNotFound when parent does not, and
// errdefs.ErrFailedPrecondition when parent is not committed.
func (tx *Tx) Create(kind snapshots.Kind, key, parent string, opts ...snapshots.Opt) (Snapshot, error) {
	if kind != snapshots.KindActive && kind != snapshots.KindView {
		return Snapshot{}, fmt.Errorf("create snapshot %q of kind %s: %w", key, kind, errdefs.ErrInvalidArgument)
	}
	if key == "" {
		return Snapshot{}, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	base, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return Snapshot{}, err
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return Snapshot{}, err
	}
	if tx.snaps.Bucket([]byte(key)) != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	}
	var parentIDs []string
	if parent != "" {
		pb, err := tx.record(parent)
		if err != nil {
			return Snapshot{}, fmt.Errorf("parent of %q: %w", key, err)
		}
		if k := snapshots.Kind(pb.Get(keyKind)[0]); k != snapshots.KindCommitted {
			return Snapshot{}, fmt.Errorf("parent %q of %q is %s, not committed: %w", parent, key, k, errdefs.ErrFailedPrecondition)
		}
		if parentIDs, err = tx.chain(parent); err != nil {
			return Snapshot{}, err
		}
		cb, err := pb.CreateBucketIfNotExists(bucketChildren)
		if err != nil {
			return Snapshot{}, err
		}
		if err := cb.Put([]byte(key), nil); err != nil {
			return Snapshot{}, err
		}
	}
	seq, err := tx.ids.NextSequence()
	if err != nil {
		return Snapshot{}, err
	}
	id := strconv.FormatUint(seq, 10)
	b, err := tx.snaps.CreateBucket([]byte(key))
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	now := time.Now()
	if err := tx.ids.Put([]byte(id), []byte(key)); err != nil {
		return Snapshot{}, err
	}
	if err := writeRecord(b, id, kind, parent, now, now, base.Labels); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{ID: id, Kind: kind, ParentIDs: parentIDs}, nil
}

func writeRecord(b *bolt.Bucket, id string, kind snapshots.Kind, parent string, created, updated time.Time, labels map[string]string) error {
	if err := b.Put(keyID, []byte(id)); err != nil {
		return err
	}
	if err := b.Put(keyKind, []byte{byte(kind)}); err != nil {
		return err
	}
	if parent != "" {
		if err := b.Put(keyParent, []byte(parent)); err != nil {
			return err
		}
	}
	if err := boltutil.PutTime(b, keyCreatedAt, created); err != nil {
		return err
	}
	if err := boltutil.PutTime(b, keyUpdatedAt, updated); err != nil {
		return err
	}
	return boltutil.ReplaceMap(b, bucketLabels, labels)
}

// chain returns the ids of key and its ancestors, key's first.
func (tx *Tx) chain(key string) ([]string, error) {
	var ids []string
	for key != "" {
		b, err := tx.record(key)
		if err != nil {
			return nil, fmt.Errorf("ancestor: %w", err)
		}
		ids = append(ids, string(b.Get(keyID)))
		key = string(b.Get(keyParent))
		if len(ids) > 10000 {
			return nil, fmt.Errorf("snapshot %q: parent chain loops: %w", key, errdefs.ErrDataLoss)
		}
	}
	return ids, nil
}

// Get returns the snapshot key for mounting, or errdefs.ErrNotFound.
func (tx *Tx) Get(key string) (Snapshot, error) {
	b, err := tx.record(key)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{ID: string(b.Get(keyID)), Kind: snapshots.Kind(b.Get(keyKind)[0])}
	if p := b.Get(keyParent); len(p) > 0 {
		if s.ParentIDs, err = tx.chain(string(p)); err != nil {
			return Snapshot{}, err
		}
	}
	return s, nil
}

// Info returns the id, the info and the recorded usage (committed
// snapshots only) of key, or errdefs.ErrNotFound.
func (tx *Tx) Info(key string) (string, snapshots.Info, snapshots.Usage, error) {
	b, err := tx.record(key)
	if err != nil {
		return "", snapshots.Info{}, snapshots.Usage{}, err
	}
	return string(b.Get(keyID)), readInfo(key, b), snapshots.Usage{Size: boltutil.ReadInt(b, keySize), Inodes: boltutil.ReadInt(b, keyInodes)}, nil
}

// SetUsage records the usage of the committed snapshot key (measured
// after a commit that left it unknown).
func (tx *Tx) SetUsage(key string, usage snapshots.Usage) error {
	b, err := tx.record(key)
	if err != nil {
		return err
	}
	if err := boltutil.PutInt(b, keySize, usage.Size); err != nil {
		return err
	}
	return boltutil.PutInt(b, keyInodes, usage.Inodes)
}

// Children returns the number of snapshots whose parent is key.
func (tx *Tx) Children(key string) (int, error) {
	b, err := tx.record(key)
	if err != nil {
		return 0, err
	}
	return countChildren(b), nil
}

func countChildren(b *bolt.Bucket) int {
	cb := b.Bucket(bucketChildren)
	if cb == nil {
		return 0
	}
	n := 0
	_ = cb.ForEach(func(k, v []byte) error { n++; return nil })
	return n
}

func readInfo(key string, b *bolt.Bucket) snapshots.Info {
	return snapshots.Info{
		Kind:    snapshots.Kind(b.Get(keyKind)[0]),
		Name:    key,
		Parent:  string(b.Get(keyParent)),
		Labels:  boltutil.ReadMap(b, bucketLabels),
		Created: boltutil.ReadTime(b, keyCreatedAt),
		Updated: boltutil.ReadTime(b, keyUpdatedAt),
	}
}

// Update changes the labels of info.Name; see snapshots.Snapshotter.Update.
func (tx *Tx) Update(info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	b, err := tx.record(info.Name)
	if err != nil {
		return snapshots.Info{}, err
	}
	labels, err := lbl.Update(boltutil.ReadMap(b, bucketLabels), info.Labels, snapshots.UpdatePaths(fieldpaths))
	if err != nil {
		return snapshots.Info{}, fmt.Errorf("update snapshot %q: %w", info.Name, err)
	}
	if err := boltutil.ReplaceMap(b, bucketLabels, labels); err != nil {
		return snapshots.Info{}, err
	}
	if err := boltutil.PutTime(b, keyUpdatedAt, time.Now()); err != nil {
		return snapshots.Info{}, err
	}
	return readInfo(info.Name, b), nil
}

// Commit renames the active snapshot key to the committed snapshot name,
// recording usage; the labels of the committed snapshot are those opts
// give, as in containerd. It returns the id, which stays the same.
// Errors: errdefs.ErrAlreadyExists when name exists, errdefs.ErrNotFound
// when key does not, errdefs.ErrFailedPrecondition when key is not active.
func (tx *Tx) Commit(key, name string, usage snapshots.Usage, opts ...snapshots.Opt) (string, error) {
	if name == "" {
		return "", fmt.Errorf("snapshot name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	base, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return "", err
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return "", err
	}
	b, err := tx.record(key)
	if err != nil {
		return "", err
	}
	if k := snapshots.Kind(b.Get(keyKind)[0]); k != snapshots.KindActive {
		return "", fmt.Errorf("commit snapshot %q: it is %s, not active: %w", key, k, errdefs.ErrFailedPrecondition)
	}
	if tx.snaps.Bucket([]byte(name)) != nil {
		return "", fmt.Errorf("commit %q as %q: %w", key, name, errdefs.ErrAlreadyExists)
	}
	id := string(b.Get(keyID))
	parent := string(b.Get(keyParent))
	if base.Parent != "" && base.Parent != parent {
		if parent != "" {
			return "", fmt.Errorf("commit %q on %q: it was prepared on %q: %w", key, base.Parent, parent, errdefs.ErrInvalidArgument)
		}
		pb, err := tx.record(base.Parent)
		if err != nil {
			return "", fmt.Errorf("commit %q on parent: %w", key, err)
		}
		if k := snapshots.Kind(pb.Get(keyKind)[0]); k != snapshots.KindCommitted {
			return "", fmt.Errorf("commit %q on %q: the parent is %s, not committed: %w", key, base.Parent, k, errdefs.ErrFailedPrecondition)
		}
		parent = base.Parent
	}
	created := boltutil.ReadTime(b, keyCreatedAt)
	nb, err := tx.snaps.CreateBucket([]byte(name))
	if err != nil {
		return "", err
	}
	if err := writeRecord(nb, id, snapshots.KindCommitted, parent, created, time.Now(), base.Labels); err != nil {
		return "", err
	}
	if err := boltutil.PutInt(nb, keySize, usage.Size); err != nil {
		return "", err
	}
	if err := boltutil.PutInt(nb, keyInodes, usage.Inodes); err != nil {
		return "", err
	}
	if err := tx.snaps.DeleteBucket([]byte(key)); err != nil {
		return "", err
	}
	if err := tx.ids.Put([]byte(id), []byte(name)); err != nil {
		return "", err
	}
	if parent != "" {
		pb, err := tx.record(parent)
		if err != nil {
			return "", err
		}
		cb, err := pb.CreateBucketIfNotExists(bucketChildren)
		if err != nil {
			return "", err
		}
		if err := cb.Delete([]byte(key)); err != nil {
			return "", err
		}
		if err := cb.Put([]byte(name), nil); err != nil {
			return "", err
		}
	}
	return id, nil
}

// Remove deletes the record of key and returns its id and kind. It returns
// errdefs.ErrFailedPrecondition while key has children.
func (tx *Tx) Remove(key string) (string, snapshots.Kind, error) {
	b, err := tx.record(key)
	if err != nil {
		return "", 0, err
	}
	if n := countChildren(b); n > 0 {
		return "", 0, fmt.Errorf("remove snapshot %q: it has %d children: %w", key, n, errdefs.ErrFailedPrecondition)
	}
	id, kind := string(b.Get(keyID)), snapshots.Kind(b.Get(keyKind)[0])
	if p := b.Get(keyParent); len(p) > 0 {
		pb, err := tx.record(string(p))
		if err != nil {
			return "", 0, err
		}
		if cb := pb.Bucket(bucketChildren); cb != nil {
			if err := cb.Delete([]byte(key)); err != nil {
				return "", 0, err
			}
		}
	}
	if err := tx.snaps.DeleteBucket([]byte(key)); err != nil {
		return "", 0, err
	}
	if err := tx.ids.Delete([]byte(id)); err != nil {
		return "", 0, err
	}
	return id, kind, nil
}

// Walk calls fn for each snapshot matching any of fs, in key order. fn runs
// inside the transaction and must not start another.
func (tx *Tx) Walk(ctx context.Context, fn func(snapshots.Info) error, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return err
	}
	return tx.snaps.ForEachBucket(func(k []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		info := readInfo(string(k), tx.snaps.Bucket(k))
		if !filter.Match(snapshots.AdaptInfo(info)) {
			return nil
		}
		return fn(info)
	})
}

// IDs returns the id of every snapshot, mapped to its key.
func (tx *Tx) IDs() (map[string]string, error) {
	out := map[string]string{}
	err := tx.ids.ForEach(func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	})
	return out, err
}

// readLabels copies the labels (bbolt's slices die with the transaction).
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
