// Package leases serves containerd.services.leases.v1 over strata's lease
// manager (leases.Manager).
package leases

import (
	"context"
	"fmt"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/protoconv"
)

// Service serves containerd's leases API over a lease manager (the
// metadata database's), within the namespace of each call. Expiry is the
// lease label containerd.io/gc.expire (RFC 3339), which clients such as
// ctr set.
type Service struct {
	leasesapi.UnimplementedLeasesServer
	manager leases.Manager
}

// New returns the service over m.
func New(m leases.Manager) *Service { return &Service{manager: m} }

// Register serves the service on g.
func (l *Service) Register(g *grpc.Server) { leasesapi.RegisterLeasesServer(g, l) }

// Create makes a lease; without an ID the manager generates one.
func (l *Service) Create(ctx context.Context, req *leasesapi.CreateRequest) (*leasesapi.CreateResponse, error) {
	opts := []leases.Opt{leases.WithLabels(req.Labels)}
	if req.ID != "" {
		opts = append(opts, leases.WithID(req.ID))
	}
	lease, err := l.manager.Create(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &leasesapi.CreateResponse{Lease: protoconv.LeaseToProto(lease)}, nil
}

// Delete removes a lease; with sync, garbage collection has run when it
// returns.
func (l *Service) Delete(ctx context.Context, req *leasesapi.DeleteRequest) (*emptypb.Empty, error) {
	var opts []leases.DeleteOpt
	if req.Sync {
		opts = append(opts, leases.SynchronousDelete)
	}
	if err := l.manager.Delete(ctx, leases.Lease{ID: req.ID}, opts...); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (l *Service) List(ctx context.Context, req *leasesapi.ListRequest) (*leasesapi.ListResponse, error) {
	ls, err := l.manager.List(ctx, req.Filters...)
	if err != nil {
		return nil, err
	}
	resp := &leasesapi.ListResponse{}
	for _, lease := range ls {
		resp.Leases = append(resp.Leases, protoconv.LeaseToProto(lease))
	}
	return resp, nil
}

func leaseResource(id string, r *leasesapi.Resource) (leases.Resource, error) {
	if r == nil {
		return leases.Resource{}, fmt.Errorf("lease %q: resource is required: %w", id, errdefs.ErrInvalidArgument)
	}
	return leases.Resource{ID: r.ID, Type: r.Type}, nil
}

func (l *Service) AddResource(ctx context.Context, req *leasesapi.AddResourceRequest) (*emptypb.Empty, error) {
	r, err := leaseResource(req.ID, req.Resource)
	if err != nil {
		return nil, err
	}
	if err := l.manager.AddResource(ctx, leases.Lease{ID: req.ID}, r); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (l *Service) DeleteResource(ctx context.Context, req *leasesapi.DeleteResourceRequest) (*emptypb.Empty, error) {
	r, err := leaseResource(req.ID, req.Resource)
	if err != nil {
		return nil, err
	}
	if err := l.manager.DeleteResource(ctx, leases.Lease{ID: req.ID}, r); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (l *Service) ListResources(ctx context.Context, req *leasesapi.ListResourcesRequest) (*leasesapi.ListResourcesResponse, error) {
	rs, err := l.manager.ListResources(ctx, leases.Lease{ID: req.ID})
	if err != nil {
		return nil, err
	}
	resp := &leasesapi.ListResourcesResponse{}
	for _, r := range rs {
		resp.Resources = append(resp.Resources, &leasesapi.Resource{ID: r.ID, Type: r.Type})
	}
	return resp, nil
}
