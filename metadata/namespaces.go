package metadata

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// NamespaceStore creates, labels, lists and deletes namespaces. A namespace
// also comes into being when something is first written into it.
type NamespaceStore struct{ db *DB }

// Namespaces returns the namespace store.
func (db *DB) Namespaces() *NamespaceStore { return &NamespaceStore{db: db} }

// Create makes the namespace name. It returns errdefs.ErrAlreadyExists when it
// exists.
func (s *NamespaceStore) Create(ctx context.Context, name string, labels map[string]string) error {
	if err := namespaces.Validate(name); err != nil {
		return err
	}
	if err := lbl.Validate(labels); err != nil {
		return err
	}
	return s.db.update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketV1)
		if root.Bucket([]byte(name)) != nil {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrAlreadyExists)
		}
		b, err := root.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		return boltutil.PutMap(b, bucketLabels, labels)
	})
}

// Labels returns the labels of namespace name.
func (s *NamespaceStore) Labels(ctx context.Context, name string) (map[string]string, error) {
	var labels map[string]string
	err := s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, name)
		if b == nil {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrNotFound)
		}
		labels = boltutil.ReadMap(b, bucketLabels)
		return nil
	})
	return labels, err
}

// SetLabel sets (or, with an empty value, removes) one label of namespace
// name, creating the namespace when it does not exist, as containerd's
// does (its Go client labels a namespace before anything else is in it).
func (s *NamespaceStore) SetLabel(ctx context.Context, name, key, value string) error {
	if err := namespaces.Validate(name); err != nil {
		return err
	}
	if err := lbl.Validate(map[string]string{key: value}); err != nil {
		return err
	}
	return s.db.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketV1).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		if value == "" {
			if lb := b.Bucket(bucketLabels); lb != nil {
				return lb.Delete([]byte(key))
			}
			return nil
		}
		lb, err := b.CreateBucketIfNotExists(bucketLabels)
		if err != nil {
			return err
		}
		return lb.Put([]byte(key), []byte(value))
	})
}

// List returns the names of all namespaces, sorted.
func (s *NamespaceStore) List(ctx context.Context) ([]string, error) {
	var out []string
	err := s.db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	sort.Strings(out)
	return out, err
}

// Delete removes the namespace name. It returns errdefs.ErrNotFound when it
// does not exist and errdefs.ErrFailedPrecondition, naming what is left, when
// it still holds containers, images, blobs or snapshots, as containerd's does, or an
// ingest a writer is using. Partial downloads that no writer uses (a failed
// pull leaves one; clients never clean them up) and leases go with it, and
// the ingests' data is freed.
func (s *NamespaceStore) Delete(ctx context.Context, name string) error {
	s.db.wlock.RLock()
	defer s.db.wlock.RUnlock()
	var brefs []string
	err := s.db.updateHeld(func(tx *bolt.Tx) error {
		b := nsBucket(tx, name)
		if b == nil {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrNotFound)
		}
		var left []string
		for _, kind := range []struct {
			what string
			path [][]byte
		}{
			{"containers", [][]byte{bucketContainers}},
			{"images", [][]byte{bucketImages}},
			{"blobs", [][]byte{bucketContent, bucketBlob}},
			{"snapshots", [][]byte{bucketSnapshots}},
		} {
			if kb := nsBucket(tx, name, kind.path...); kb != nil && !empty(kb) {
				left = append(left, kind.what)
			}
		}
		if ib := nsBucket(tx, name, bucketContent, bucketIngests); ib != nil {
			_ = ib.ForEachBucket(func(k []byte) error {
				bref := string(ib.Bucket(k).Get(keyRef))
				if s.db.backend.Active(bref) {
					left = append(left, fmt.Sprintf("ingest %q in use", k))
				}
				brefs = append(brefs, bref)
				return nil
			})
		}
		if len(left) > 0 {
			return fmt.Errorf("namespace %q still has %v: remove them first: %w", name, left, errdefs.ErrFailedPrecondition)
		}
		return tx.Bucket(bucketV1).DeleteBucket([]byte(name))
	})
	if err != nil {
		return err
	}
	for _, bref := range brefs {
		if err := s.db.backend.Abort(ctx, bref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			// The record is gone: GC removes the data it left.
			s.db.opts.logger.Warn("remove the data of an ingest of a deleted namespace", "namespace", name, "ref", bref, "error", err)
			s.db.scheduleGC()
		}
	}
	return nil
}

func empty(b *bolt.Bucket) bool {
	k, _ := b.Cursor().First()
	if k == nil {
		return true
	}
	// A snapshots bucket holds one bucket per snapshotter: empty when all are.
	isEmpty := true
	_ = b.ForEach(func(k, v []byte) error {
		if v != nil {
			isEmpty = false
		} else if sb := b.Bucket(k); sb != nil {
			if c, _ := sb.Cursor().First(); c != nil {
				isEmpty = false
			}
		}
		return nil
	})
	return isEmpty
}

var _ namespaces.Store = (*NamespaceStore)(nil)
