// Package snapshotter is the namespaced view of a snapshot backend
// (containerd's metadata snapshotter): keys are per namespace, each record
// (v1/<namespace>/snapshots/<snapshotter>/<key>, see metadata/doc.go)
// names its backend snapshot "<namespace>/<seq>/<key>", so no two
// namespaces ever share one, and the context's lease holds what Prepare,
// View and Commit make. A snapshot cannot be verified from its name, so a
// Prepare carrying the containerd.io/snapshot.ref label of a layer returns
// errdefs.ErrAlreadyExists only when the caller's own namespace has it, as
// containerd's does. Remove deletes the record only; the backend snapshot
// goes with the next garbage collection (metadata/collect). Package
// metadata hands it out as DB.Snapshotter(name), over the small DB
// interface below; snapshotter never imports metadata.
package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// DB is what a namespaced snapshotter uses of the metadata database.
type DB interface {
	// View runs a read transaction.
	View(fn func(*bolt.Tx) error) error
	// Update runs a write transaction, which garbage collection waits for.
	Update(fn func(*bolt.Tx) error) error
	// Removed says that a record went, so that a collection frees what it
	// held.
	Removed()
}

// New returns the namespaced view of backend sn, registered as name.
func New(db DB, name string, sn snapshots.Snapshotter) *Snapshotter {
	return &Snapshotter{db: db, name: name, sn: sn}
}

// Snapshotter is a snapshot backend seen per namespace. Its methods are
// snapshots.Snapshotter's, with containerd's semantics, on the context's
// namespace (errdefs.ErrFailedPrecondition without one): a key the
// namespace lacks is errdefs.ErrNotFound, a key it has already
// errdefs.ErrAlreadyExists, and the backend's errors name the caller's
// keys, not the backend's.
type Snapshotter struct {
	db   DB
	name string
	sn   snapshots.Snapshotter
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Rebaser     = (*Snapshotter)(nil)
)

// CanRebase is the backend's (snapshots.Rebaser).
func (s *Snapshotter) CanRebase() bool { return snapshots.CanRebase(s.sn) }

// snapshotRecord is a snapshot record read out of its transaction.
type snapshotRecord struct {
	key, bkey, parent string
	labels            map[string]string
	created, updated  time.Time
}

func (s *Snapshotter) bucket(tx *bolt.Tx, ns string) *bolt.Bucket {
	return schema.NS(tx, ns, schema.Snapshots, []byte(s.name))
}

func readSnapshotRecord(key string, b *bolt.Bucket) snapshotRecord {
	return snapshotRecord{
		key:     key,
		bkey:    string(b.Get(schema.Name)),
		parent:  string(b.Get(schema.Parent)),
		labels:  boltutil.ReadMap(b, schema.Labels),
		created: boltutil.ReadTime(b, schema.CreatedAt),
		updated: boltutil.ReadTime(b, schema.UpdatedAt),
	}
}

func (s *Snapshotter) get(ctx context.Context, key string) (string, snapshotRecord, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", snapshotRecord{}, err
	}
	if key == "" {
		return "", snapshotRecord{}, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var r snapshotRecord
	err = s.db.View(func(tx *bolt.Tx) error {
		b := s.bucket(tx, ns)
		if b == nil || b.Bucket([]byte(key)) == nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", key, ns, errdefs.ErrNotFound)
		}
		r = readSnapshotRecord(key, b.Bucket([]byte(key)))
		return nil
	})
	return ns, r, err
}

func (s *Snapshotter) info(ctx context.Context, r snapshotRecord) (snapshots.Info, error) {
	binfo, err := s.sn.Stat(ctx, r.bkey)
	if err != nil {
		return snapshots.Info{}, fmt.Errorf("snapshot %q: backend %q: %w", r.key, r.bkey, err)
	}
	return snapshots.Info{Kind: binfo.Kind, Name: r.key, Parent: r.parent, Labels: r.labels, Created: r.created, Updated: r.updated}, nil
}

func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	_, r, err := s.get(ctx, key)
	if err != nil {
		return snapshots.Info{}, err
	}
	return s.info(ctx, r)
}

func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return snapshots.Info{}, err
	}
	var r snapshotRecord
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb := s.bucket(tx, ns)
		var b *bolt.Bucket
		if sb != nil && info.Name != "" {
			b = sb.Bucket([]byte(info.Name))
		}
		if b == nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", info.Name, ns, errdefs.ErrNotFound)
		}
		labels, err := lbl.Update(boltutil.ReadMap(b, schema.Labels), info.Labels, snapshots.UpdatePaths(fieldpaths))
		if err != nil {
			return fmt.Errorf("update snapshot %q: %w", info.Name, err)
		}
		if err := boltutil.ReplaceMap(b, schema.Labels, labels); err != nil {
			return err
		}
		if err := boltutil.PutTime(b, schema.UpdatedAt, time.Now()); err != nil {
			return err
		}
		r = readSnapshotRecord(info.Name, b)
		return nil
	})
	if err != nil {
		return snapshots.Info{}, err
	}
	return s.info(ctx, r)
}

func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	_, r, err := s.get(ctx, key)
	if err != nil {
		return snapshots.Usage{}, err
	}
	u, err := s.sn.Usage(ctx, r.bkey)
	return u, renameKeys(err, r.bkey, key)
}

func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	_, r, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := s.sn.Mounts(ctx, r.bkey)
	return m, renameKeys(err, r.bkey, key)
}

func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

// addSnapshotLease makes the context's lease hold the snapshot key.
func (s *Snapshotter) addSnapshotLease(ctx context.Context, tx *bolt.Tx, ns, key string) error {
	lb, err := schema.ContextLease(ctx, tx, ns)
	if err != nil || lb == nil {
		return err
	}
	b, err := lb.CreateBucketIfNotExists(schema.Snapshots)
	if err != nil {
		return err
	}
	if b, err = b.CreateBucketIfNotExists([]byte(s.name)); err != nil {
		return err
	}
	return b.Put([]byte(key), nil)
}

// writeSnapshotRecord writes a new record key pointing at backend key bkey under
// parent, and links it into the parent's children.
func writeSnapshotRecord(sb *bolt.Bucket, key, bkey, parent string, labels map[string]string, created time.Time) error {
	b, err := sb.CreateBucket([]byte(key))
	if err != nil {
		return err
	}
	if err := b.Put(schema.Name, []byte(bkey)); err != nil {
		return err
	}
	if parent != "" {
		if err := b.Put(schema.Parent, []byte(parent)); err != nil {
			return err
		}
		cb, err := sb.Bucket([]byte(parent)).CreateBucketIfNotExists(schema.Children)
		if err != nil {
			return err
		}
		if err := cb.Put([]byte(key), nil); err != nil {
			return err
		}
	}
	if err := boltutil.PutTime(b, schema.CreatedAt, created); err != nil {
		return err
	}
	// A new record has not been updated: Updated is Created, as
	// containerd's snapshot suite requires.
	if err := boltutil.PutTime(b, schema.UpdatedAt, created); err != nil {
		return err
	}
	return boltutil.PutMap(b, schema.Labels, labels)
}

func (s *Snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	base, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return nil, err
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return nil, err
	}
	var mounts []mount.Mount
	// The backend call runs inside the transaction: a failure leaves no
	// record, and GC (which waits for the transaction) never sees a
	// backend snapshot that is about to get its record.
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb, err := schema.CreateNS(tx, ns, schema.Snapshots, []byte(s.name))
		if err != nil {
			return err
		}
		if sb.Bucket([]byte(key)) != nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", key, ns, errdefs.ErrAlreadyExists)
		}
		bparent := ""
		if parent != "" {
			pb := sb.Bucket([]byte(parent))
			if pb == nil {
				return fmt.Errorf("parent %q of snapshot %q in namespace %q: %w", parent, key, ns, errdefs.ErrNotFound)
			}
			bparent = string(pb.Get(schema.Name))
		}
		// lbl.SnapshotRef on Prepare names the committed snapshot the
		// caller is about to create (a layer's chain ID); when the
		// namespace has it already, Prepare returns
		// errdefs.ErrAlreadyExists (containerd's convention). Only the
		// caller's namespace counts: a snapshot cannot be verified from
		// its name, so one another namespace committed is never adopted.
		if target := base.Labels[lbl.SnapshotRef]; kind == snapshots.KindActive && target != "" && sb.Bucket([]byte(target)) != nil {
			return fmt.Errorf("snapshot %q (target of %q) in namespace %q: %w", target, key, ns, errdefs.ErrAlreadyExists)
		}
		seq, err := sb.NextSequence()
		if err != nil {
			return err
		}
		bkey := ns + "/" + strconv.FormatUint(seq, 10) + "/" + key
		if err := writeSnapshotRecord(sb, key, bkey, parent, base.Labels, time.Now()); err != nil {
			return err
		}
		if err := s.addSnapshotLease(ctx, tx, ns, key); err != nil {
			return err
		}
		if kind == snapshots.KindActive {
			mounts, err = s.sn.Prepare(ctx, bkey, bparent)
		} else {
			mounts, err = s.sn.View(ctx, bkey, bparent)
		}
		if err != nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", key, ns, renameKeys(err, bkey, key, bparent, parent))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return mounts, nil
}

func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	if name == "" || key == "" {
		return fmt.Errorf("commit %q as %q: key and name must not be empty: %w", key, name, errdefs.ErrInvalidArgument)
	}
	base, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return err
	}
	if err := lbl.Validate(base.Labels); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		sb := s.bucket(tx, ns)
		if sb == nil || sb.Bucket([]byte(key)) == nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", key, ns, errdefs.ErrNotFound)
		}
		if sb.Bucket([]byte(name)) != nil {
			return fmt.Errorf("commit %q as %q in namespace %q: %w", key, name, ns, errdefs.ErrAlreadyExists)
		}
		r := readSnapshotRecord(key, sb.Bucket([]byte(key)))
		binfo, err := s.sn.Stat(ctx, r.bkey)
		if err != nil {
			return err
		}
		if binfo.Kind != snapshots.KindActive {
			return fmt.Errorf("commit snapshot %q: it is %s, not active: %w", key, binfo.Kind, errdefs.ErrFailedPrecondition)
		}
		parent := r.parent
		var bopts []snapshots.Opt
		if base.Parent != "" && base.Parent != r.parent {
			if r.parent != "" {
				return fmt.Errorf("commit %q on %q: it was prepared on %q: %w", key, base.Parent, r.parent, errdefs.ErrInvalidArgument)
			}
			pb := sb.Bucket([]byte(base.Parent))
			if pb == nil {
				return fmt.Errorf("commit %q on parent %q in namespace %q: %w", key, base.Parent, ns, errdefs.ErrNotFound)
			}
			pr := readSnapshotRecord(base.Parent, pb)
			parent = base.Parent
			bopts = append(bopts, snapshots.WithParent(pr.bkey))
		}
		seq, err := sb.NextSequence()
		if err != nil {
			return err
		}
		bname := ns + "/" + strconv.FormatUint(seq, 10) + "/" + name
		if err := schema.RemoveSnapshotRecord(sb, key); err != nil {
			return err
		}
		if err := writeSnapshotRecord(sb, name, bname, parent, base.Labels, r.created); err != nil {
			return err
		}
		if err := s.addSnapshotLease(ctx, tx, ns, name); err != nil {
			return err
		}
		if err := s.sn.Commit(ctx, bname, r.bkey, bopts...); err != nil {
			return fmt.Errorf("commit %q as %q in namespace %q: %w", key, name, ns, renameKeys(err, bname, name, r.bkey, key))
		}
		return nil
	})
}

// Remove deletes the namespace's record of key; the backend snapshot goes
// with the garbage collection this schedules, once no namespace refers to
// it.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb := s.bucket(tx, ns)
		var b *bolt.Bucket
		if sb != nil && key != "" {
			b = sb.Bucket([]byte(key))
		}
		if b == nil {
			return fmt.Errorf("snapshot %q in namespace %q: %w", key, ns, errdefs.ErrNotFound)
		}
		if cb := b.Bucket(schema.Children); cb != nil {
			if k, _ := cb.Cursor().First(); k != nil {
				return fmt.Errorf("remove snapshot %q: it has children (%q): %w", key, k, errdefs.ErrFailedPrecondition)
			}
		}
		return schema.RemoveSnapshotRecord(sb, key)
	})
	if err == nil {
		s.db.Removed()
	}
	return err
}

func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return err
	}
	var records []snapshotRecord
	err = s.db.View(func(tx *bolt.Tx) error {
		sb := s.bucket(tx, ns)
		if sb == nil {
			return nil
		}
		return sb.ForEachBucket(func(k []byte) error {
			records = append(records, readSnapshotRecord(string(k), sb.Bucket(k)))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, r := range records {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := s.info(ctx, r)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // removed since
		}
		if err != nil {
			return err
		}
		if !filter.Match(snapshots.AdaptInfo(info)) {
			continue
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup cleans the backend.
func (s *Snapshotter) Cleanup(ctx context.Context) error { return s.sn.Cleanup(ctx) }

// Close does nothing: the DB owns the backend and closes it.
func (s *Snapshotter) Close() error { return nil }

// renamedErr is an error whose message names the namespace's keys where
// the driver named its own ("default/3/l1"); it unwraps to the original, so
// errors.Is still finds the errdefs class.
type renamedErr struct {
	msg   string
	cause error
}

func (e *renamedErr) Error() string { return e.msg }
func (e *renamedErr) Unwrap() error { return e.cause }

// renameKeys rewrites backend keys to user keys (pairs of old, new) in
// err's message.
func renameKeys(err error, pairs ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] != "" {
			msg = strings.ReplaceAll(msg, pairs[i], pairs[i+1])
		}
	}
	if msg == err.Error() {
		return err
	}
	return &renamedErr{msg: msg, cause: err}
}

// listScope returns the context's namespace and the filter that the strings
// fs make.
func listScope(ctx context.Context, fs []string) (string, filters.Filter, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return "", nil, err
	}
	return ns, filter, nil
}
