package protoconv

import (
	"fmt"
	"slices"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
)

// MountsToProto converts mounts for the snapshots service.
func MountsToProto(mounts []mount.Mount) []*types.Mount {
	out := make([]*types.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = &types.Mount{Type: m.Type, Source: m.Source, Options: slices.Clone(m.Options)}
	}
	return out
}

// MountsFromProto converts mounts, skipping nil ones. A target inside the
// mount point (containerd 2.x's mount manager) is not supported: it
// returns errdefs.ErrNotImplemented.
func MountsFromProto(mounts []*types.Mount) ([]mount.Mount, error) {
	out := make([]mount.Mount, 0, len(mounts))
	for _, m := range mounts {
		if m == nil {
			continue
		}
		if m.Target != "" {
			return nil, fmt.Errorf("%s mount with target %q: %w", m.Type, m.Target, errdefs.ErrNotImplemented)
		}
		out = append(out, mount.Mount{Type: m.Type, Source: m.Source, Options: slices.Clone(m.Options)})
	}
	return out, nil
}

// SnapshotKindToProto converts a snapshot's kind; KindUnknown is
// Kind_UNKNOWN.
func SnapshotKindToProto(k snapshots.Kind) snapshotsapi.Kind {
	switch k {
	case snapshots.KindView:
		return snapshotsapi.Kind_VIEW
	case snapshots.KindActive:
		return snapshotsapi.Kind_ACTIVE
	case snapshots.KindCommitted:
		return snapshotsapi.Kind_COMMITTED
	}
	return snapshotsapi.Kind_UNKNOWN
}

// SnapshotKindFromProto converts a snapshot's kind; what it does not know
// is KindUnknown.
func SnapshotKindFromProto(k snapshotsapi.Kind) snapshots.Kind {
	switch k {
	case snapshotsapi.Kind_VIEW:
		return snapshots.KindView
	case snapshotsapi.Kind_ACTIVE:
		return snapshots.KindActive
	case snapshotsapi.Kind_COMMITTED:
		return snapshots.KindCommitted
	}
	return snapshots.KindUnknown
}

// SnapshotInfoToProto converts a snapshot's info for the snapshots
// service.
func SnapshotInfoToProto(info snapshots.Info) *snapshotsapi.Info {
	return &snapshotsapi.Info{
		Name:      info.Name,
		Parent:    info.Parent,
		Kind:      SnapshotKindToProto(info.Kind),
		CreatedAt: timestamppb.New(info.Created),
		UpdatedAt: timestamppb.New(info.Updated),
		Labels:    info.Labels,
	}
}

// SnapshotInfoFromProto converts a snapshot's info from the snapshots
// service; absent fields stay zero.
func SnapshotInfoFromProto(info *snapshotsapi.Info) snapshots.Info {
	if info == nil {
		return snapshots.Info{}
	}
	out := snapshots.Info{
		Name:   info.Name,
		Parent: info.Parent,
		Kind:   SnapshotKindFromProto(info.Kind),
		Labels: info.Labels,
	}
	if info.CreatedAt != nil {
		out.Created = info.CreatedAt.AsTime()
	}
	if info.UpdatedAt != nil {
		out.Updated = info.UpdatedAt.AsTime()
	}
	return out
}
