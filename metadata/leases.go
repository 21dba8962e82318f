package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// LeaseManager keeps leases per namespace.
type LeaseManager struct{ db *DB }

var _ leases.Manager = (*LeaseManager)(nil)

// Leases returns the lease manager.
func (db *DB) Leases() *LeaseManager { return &LeaseManager{db: db} }

func newLeaseID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("strata-%d-%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}

func adaptLease(l leases.Lease) filters.Adaptor {
	return filters.AdapterFunc(func(fp []string) (string, bool) {
		if len(fp) == 0 {
			return "", false
		}
		switch fp[0] {
		case "id":
			return l.ID, true
		case "labels":
			return filters.LabelField(l.Labels, fp)
		}
		return "", false
	})
}

// Create makes a lease.
func (m *LeaseManager) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return leases.Lease{}, err
	}
	var l leases.Lease
	for _, o := range opts {
		if err := o(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	if l.ID == "" {
		l.ID = newLeaseID()
	} else if err := validLeaseID(l.ID); err != nil {
		return leases.Lease{}, err
	}
	if err := lbl.Validate(l.Labels); err != nil {
		return leases.Lease{}, err
	}
	if v, ok := l.Labels[lbl.GCExpire]; ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return leases.Lease{}, fmt.Errorf("lease %q: label %s=%q is not an RFC 3339 time: %w", l.ID, lbl.GCExpire, v, errdefs.ErrInvalidArgument)
		}
	}
	err = m.db.update(func(tx *bolt.Tx) error {
		lsb, err := createNSBucket(tx, ns, bucketLeases)
		if err != nil {
			return err
		}
		if lsb.Bucket([]byte(l.ID)) != nil {
			return fmt.Errorf("lease %q in namespace %q: %w", l.ID, ns, errdefs.ErrAlreadyExists)
		}
		b, err := lsb.CreateBucket([]byte(l.ID))
		if err != nil {
			return err
		}
		l.CreatedAt = time.Now().UTC()
		if err := boltutil.PutTime(b, keyCreatedAt, l.CreatedAt); err != nil {
			return err
		}
		return boltutil.PutMap(b, bucketLabels, l.Labels)
	})
	return l, err
}

// Delete removes a lease; what only it protected is collected.
func (m *LeaseManager) Delete(ctx context.Context, lease leases.Lease, opts ...leases.DeleteOpt) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	var do leases.DeleteOptions
	for _, o := range opts {
		if err := o(&do); err != nil {
			return err
		}
	}
	err = m.db.update(func(tx *bolt.Tx) error {
		lsb := nsBucket(tx, ns, bucketLeases)
		if lsb == nil || lsb.Bucket([]byte(lease.ID)) == nil {
			return fmt.Errorf("lease %q in namespace %q: %w", lease.ID, ns, errdefs.ErrNotFound)
		}
		return lsb.DeleteBucket([]byte(lease.ID))
	})
	if err != nil {
		return err
	}
	if do.Synchronous {
		_, err := m.db.GarbageCollect(ctx, GCOptions{})
		return err
	}
	m.db.scheduleGC()
	return nil
}

// List returns the leases matching any of fs (fields: id, labels.<key>).
func (m *LeaseManager) List(ctx context.Context, fs ...string) ([]leases.Lease, error) {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return nil, err
	}
	var out []leases.Lease
	err = m.db.view(func(tx *bolt.Tx) error {
		lsb := nsBucket(tx, ns, bucketLeases)
		if lsb == nil {
			return nil
		}
		return lsb.ForEachBucket(func(k []byte) error {
			b := lsb.Bucket(k)
			l := leases.Lease{ID: string(k), CreatedAt: boltutil.ReadTime(b, keyCreatedAt), Labels: boltutil.ReadMap(b, bucketLabels)}
			if filter.Match(adaptLease(l)) {
				out = append(out, l)
			}
			return nil
		})
	})
	return out, err
}

// resourcePath maps a resource onto its bucket path under the lease and its
// key. Types: content, ingests, snapshots/<snapshotter>.
func resourcePath(r leases.Resource) ([][]byte, []byte, error) {
	if r.ID == "" {
		return nil, nil, fmt.Errorf("lease resource id must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	switch {
	case r.Type == "content":
		if err := digest.Digest(r.ID).Validate(); err != nil {
			return nil, nil, fmt.Errorf("lease resource content %q: %w: %w", r.ID, err, errdefs.ErrInvalidArgument)
		}
		return [][]byte{bucketContent}, []byte(r.ID), nil
	case r.Type == "ingests":
		return [][]byte{bucketIngests}, []byte(r.ID), nil
	case strings.HasPrefix(r.Type, "snapshots/") && len(r.Type) > len("snapshots/"):
		return [][]byte{bucketSnapshots, []byte(strings.TrimPrefix(r.Type, "snapshots/"))}, []byte(r.ID), nil
	}
	return nil, nil, fmt.Errorf("lease resource type %q: want content, ingests or snapshots/<snapshotter>: %w", r.Type, errdefs.ErrNotImplemented)
}

func (m *LeaseManager) leaseBucket(tx *bolt.Tx, ns, id string) (*bolt.Bucket, error) {
	b := nsBucket(tx, ns, bucketLeases, []byte(id))
	if b == nil {
		return nil, fmt.Errorf("lease %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
	}
	return b, nil
}

// AddResource makes lease hold r.
func (m *LeaseManager) AddResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	path, key, err := resourcePath(r)
	if err != nil {
		return err
	}
	return m.db.update(func(tx *bolt.Tx) error {
		b, err := m.leaseBucket(tx, ns, lease.ID)
		if err != nil {
			return err
		}
		for _, p := range path {
			if b, err = b.CreateBucketIfNotExists(p); err != nil {
				return err
			}
		}
		return b.Put(key, nil)
	})
}

// HoldExisting makes lease hold r if r exists in the context's namespace.
// The check and the hold are one transaction, so no collection can remove
// r between them (a Stat or Info, then AddResource, leaves that gap). It
// returns errdefs.ErrNotFound naming r when r does not exist (fetch or
// make it then), and errdefs.ErrFailedPrecondition when the lease does
// not. AddResource, as containerd's, does not check: clients add names
// before they create them (BuildKit adds a snapshot to a lease, then
// prepares it).
func (m *LeaseManager) HoldExisting(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	path, key, err := resourcePath(r)
	if err != nil {
		return err
	}
	return m.db.update(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketLeases, []byte(lease.ID))
		if b == nil {
			return fmt.Errorf("hold %s %q: lease %q in namespace %q does not exist: %w", r.Type, r.ID, lease.ID, ns, errdefs.ErrFailedPrecondition)
		}
		if !resourceExists(tx, ns, r) {
			return fmt.Errorf("%s %q in namespace %q: %w", r.Type, r.ID, ns, errdefs.ErrNotFound)
		}
		for _, p := range path {
			if b, err = b.CreateBucketIfNotExists(p); err != nil {
				return err
			}
		}
		return b.Put(key, nil)
	})
}

// resourceExists reports whether namespace ns has the record of r (a type
// resourcePath accepted).
func resourceExists(tx *bolt.Tx, ns string, r leases.Resource) bool {
	switch {
	case r.Type == "content":
		return nsBucket(tx, ns, bucketContent, bucketBlob, []byte(r.ID)) != nil
	case r.Type == "ingests":
		return nsBucket(tx, ns, bucketContent, bucketIngests, []byte(r.ID)) != nil
	case strings.HasPrefix(r.Type, "snapshots/"):
		return nsBucket(tx, ns, bucketSnapshots, []byte(strings.TrimPrefix(r.Type, "snapshots/")), []byte(r.ID)) != nil
	}
	return false
}

// DeleteResource makes lease release r.
func (m *LeaseManager) DeleteResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	path, key, err := resourcePath(r)
	if err != nil {
		return err
	}
	err = m.db.update(func(tx *bolt.Tx) error {
		b, err := m.leaseBucket(tx, ns, lease.ID)
		if err != nil {
			return err
		}
		for _, p := range path {
			if b = b.Bucket(p); b == nil {
				return nil
			}
		}
		return b.Delete(key)
	})
	if err == nil {
		m.db.scheduleGC()
	}
	return err
}

// ListResources returns what lease holds.
func (m *LeaseManager) ListResources(ctx context.Context, lease leases.Lease) ([]leases.Resource, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	var out []leases.Resource
	err = m.db.view(func(tx *bolt.Tx) error {
		b, err := m.leaseBucket(tx, ns, lease.ID)
		if err != nil {
			return err
		}
		schema.ForEachResource(b, func(typ, id string) {
			out = append(out, leases.Resource{ID: id, Type: typ})
		})
		return nil
	})
	return out, err
}

// maxLeaseID bounds a lease ID.
const maxLeaseID = 1024

// validLeaseID accepts what containerd's clients use as lease IDs: any
// printable text, paths included (`ctr images mount` leases the target
// directory's path), up to 1 KiB.
func validLeaseID(id string) error {
	if len(id) > maxLeaseID {
		return fmt.Errorf("lease id of %d bytes: longer than %d: %w", len(id), maxLeaseID, errdefs.ErrInvalidArgument)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("lease id %q: control characters and invalid UTF-8 are not allowed: %w", id, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
