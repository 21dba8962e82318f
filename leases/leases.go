// Package leases defines leases, which protect resources from garbage
// collection while a client works with them, and the context key that makes
// everything written under a context belong to a lease.
//
// A lease is a GC root until it is deleted or its containerd.io/gc.expire label
// (RFC 3339) has passed. Resources are content blobs (type "content"), ingests
// ("ingests") and snapshots ("snapshots/<snapshotter>").
package leases

import (
	"context"
	"time"

	"github.com/strata-oci/strata/labels"
)

// Lease is a named set of resources protected from garbage collection.
type Lease struct {
	ID        string
	CreatedAt time.Time
	Labels    map[string]string
}

// Resource is one object held by a lease.
type Resource struct {
	// ID is the digest of a blob, the ref of an ingest or the key of a snapshot.
	ID string
	// Type is "content", "ingests" or "snapshots/<snapshotter>".
	Type string
}

// Opt configures a lease being created.
type Opt func(*Lease) error

// WithID sets the lease's ID; without it one is generated.
func WithID(id string) Opt {
	return func(l *Lease) error { l.ID = id; return nil }
}

// WithLabels merges labels into the lease's labels.
func WithLabels(labels map[string]string) Opt {
	return func(l *Lease) error {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		for k, v := range labels {
			l.Labels[k] = v
		}
		return nil
	}
}

// WithExpiration makes the lease expire d from now.
func WithExpiration(d time.Duration) Opt {
	return WithLabels(map[string]string{labels.GCExpire: time.Now().Add(d).UTC().Format(time.RFC3339Nano)})
}

// DeleteOpt configures a lease deletion.
type DeleteOpt func(*DeleteOptions) error

// DeleteOptions says how a lease is deleted.
type DeleteOptions struct {
	// Synchronous runs garbage collection before Delete returns.
	Synchronous bool
}

// SynchronousDelete makes Delete wait for garbage collection.
func SynchronousDelete(o *DeleteOptions) error { o.Synchronous = true; return nil }

// Manager creates, deletes and lists leases and their resources, within the
// namespace of the context.
type Manager interface {
	// Create returns errdefs.ErrAlreadyExists when the ID is taken.
	Create(ctx context.Context, opts ...Opt) (Lease, error)
	// Delete returns errdefs.ErrNotFound when there is no such lease.
	Delete(ctx context.Context, lease Lease, opts ...DeleteOpt) error
	// List returns the leases matching any of filters (fields: id, labels.*).
	List(ctx context.Context, filters ...string) ([]Lease, error)
	AddResource(ctx context.Context, lease Lease, r Resource) error
	DeleteResource(ctx context.Context, lease Lease, r Resource) error
	ListResources(ctx context.Context, lease Lease) ([]Resource, error)
}

// Holder is a Manager that can hold a resource only if it exists, in one
// step: no collection can remove the resource between the check and the
// hold, as one can between a Stat and AddResource. Pipelines use it to
// keep what they find present (a blob, a committed layer) until their
// image is recorded.
type Holder interface {
	Manager
	// HoldExisting makes lease hold r if r exists in the context's
	// namespace. It returns errdefs.ErrNotFound naming r when r does not
	// exist, and errdefs.ErrFailedPrecondition when the lease does not.
	HoldExisting(ctx context.Context, lease Lease, r Resource) error
}

type key struct{}

// WithLease returns a context under which new content, ingests and snapshots
// are added to the lease id.
func WithLease(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// FromContext returns the lease carried by ctx, if any.
func FromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(key{}).(string)
	return id, ok && id != ""
}
