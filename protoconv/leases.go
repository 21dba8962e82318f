package protoconv

import (
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/leases"
)

// LeaseToProto converts a lease to its containerd API form.
func LeaseToProto(l leases.Lease) *leasesapi.Lease {
	return &leasesapi.Lease{ID: l.ID, CreatedAt: timestamppb.New(l.CreatedAt), Labels: l.Labels}
}

// LeaseFromProto converts a lease from its containerd API form.
func LeaseFromProto(l *leasesapi.Lease) leases.Lease {
	out := leases.Lease{ID: l.GetID(), Labels: l.GetLabels()}
	if l.GetCreatedAt() != nil {
		out.CreatedAt = l.CreatedAt.AsTime()
	}
	return out
}
