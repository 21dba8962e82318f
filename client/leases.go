package client

import (
	"context"
	"fmt"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/protoconv"
)

// LeaseManager is a leases.Manager over the leases service.
type LeaseManager struct {
	client leasesapi.LeasesClient
}

var _ leases.Manager = (*LeaseManager)(nil)

// NewLeaseManager returns a lease manager that calls the daemon on conn.
func NewLeaseManager(conn grpc.ClientConnInterface) *LeaseManager {
	return &LeaseManager{client: leasesapi.NewLeasesClient(conn)}
}

// Create makes a lease; without leases.WithID the daemon names it. It
// returns errdefs.ErrAlreadyExists when the ID is taken and
// errdefs.ErrInvalidArgument for a bad ID or expiry label.
func (m *LeaseManager) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	var l leases.Lease
	for _, o := range opts {
		if err := o(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	resp, err := m.client.Create(withNamespaceHeader(ctx), &leasesapi.CreateRequest{ID: l.ID, Labels: l.Labels})
	if err != nil {
		return leases.Lease{}, fmt.Errorf("create lease %q: %w", l.ID, errgrpc.ToNative(err))
	}
	return protoconv.LeaseFromProto(resp.Lease), nil
}

// Delete removes lease; with leases.SynchronousDelete garbage collection
// has run when it returns. It returns errdefs.ErrNotFound when there is no
// such lease.
func (m *LeaseManager) Delete(ctx context.Context, lease leases.Lease, opts ...leases.DeleteOpt) error {
	var do leases.DeleteOptions
	for _, o := range opts {
		if err := o(&do); err != nil {
			return err
		}
	}
	if _, err := m.client.Delete(withNamespaceHeader(ctx), &leasesapi.DeleteRequest{ID: lease.ID, Sync: do.Synchronous}); err != nil {
		return fmt.Errorf("delete lease %q: %w", lease.ID, errgrpc.ToNative(err))
	}
	return nil
}

// List returns the leases matching any of filters (fields: id, labels.*).
func (m *LeaseManager) List(ctx context.Context, filters ...string) ([]leases.Lease, error) {
	if err := checkFilters(filters); err != nil {
		return nil, err
	}
	resp, err := m.client.List(withNamespaceHeader(ctx), &leasesapi.ListRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", errgrpc.ToNative(err))
	}
	var out []leases.Lease
	for _, l := range resp.Leases {
		out = append(out, protoconv.LeaseFromProto(l))
	}
	return out, nil
}

// AddResource makes lease hold r. It returns errdefs.ErrNotFound when there
// is no such lease.
func (m *LeaseManager) AddResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	req := &leasesapi.AddResourceRequest{ID: lease.ID, Resource: &leasesapi.Resource{ID: r.ID, Type: r.Type}}
	if _, err := m.client.AddResource(withNamespaceHeader(ctx), req); err != nil {
		return fmt.Errorf("lease %q: add %s %q: %w", lease.ID, r.Type, r.ID, errgrpc.ToNative(err))
	}
	return nil
}

// DeleteResource makes lease release r.
func (m *LeaseManager) DeleteResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	req := &leasesapi.DeleteResourceRequest{ID: lease.ID, Resource: &leasesapi.Resource{ID: r.ID, Type: r.Type}}
	if _, err := m.client.DeleteResource(withNamespaceHeader(ctx), req); err != nil {
		return fmt.Errorf("lease %q: release %s %q: %w", lease.ID, r.Type, r.ID, errgrpc.ToNative(err))
	}
	return nil
}

// ListResources returns what lease holds.
func (m *LeaseManager) ListResources(ctx context.Context, lease leases.Lease) ([]leases.Resource, error) {
	resp, err := m.client.ListResources(withNamespaceHeader(ctx), &leasesapi.ListResourcesRequest{ID: lease.ID})
	if err != nil {
		return nil, fmt.Errorf("list resources of lease %q: %w", lease.ID, errgrpc.ToNative(err))
	}
	var out []leases.Resource
	for _, r := range resp.Resources {
		out = append(out, leases.Resource{ID: r.ID, Type: r.Type})
	}
	return out, nil
}
