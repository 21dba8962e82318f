// Package snapshots serves containerd.services.snapshots.v1 over strata's
// snapshotters (snapshots.Snapshotter), each named by the request.
package snapshots

import (
	"context"
	"fmt"
	"log/slog"

	apievents "github.com/containerd/containerd/api/events"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/protoconv"
	"github.com/strata-oci/strata/snapshots"
)

// snapListBatch is how many snapshots one List message carries (containerd
// sends 100 too).
const snapListBatch = 100

// Snapshotters finds a snapshotter by name: the metadata database's
// namespaced snapshotters. It returns nil for a name it does not know.
type Snapshotters interface {
	Snapshotter(name string) snapshots.Snapshotter
}

// Service serves containerd.services.snapshots.v1 over the namespaced
// snapshotters of the store, and tells subscribers about prepares,
// commits and removes. Every request names its snapshotter; as in
// containerd there is no default.
type Service struct {
	snapshotsapi.UnimplementedSnapshotsServer
	snapshotters Snapshotters
	events       events.Publisher
	log          *slog.Logger
}

// New returns the service over sns, telling ev about changes (nil: no
// events) and log about events it could not publish (nil: discarded).
func New(sns Snapshotters, ev events.Publisher, log *slog.Logger) *Service {
	return &Service{snapshotters: sns, events: ev, log: log}
}

// Register serves the service on g.
func (ss *Service) Register(g *grpc.Server) { snapshotsapi.RegisterSnapshotsServer(g, ss) }

// snapshotter returns the snapshotter name for a call in ctx's namespace:
// errdefs.ErrInvalidArgument for an empty or unknown name (containerd's
// "snapshotter not loaded"), errdefs.ErrFailedPrecondition without a
// namespace.
func (ss *Service) snapshotter(ctx context.Context, name string) (snapshots.Snapshotter, error) {
	if name == "" {
		return nil, fmt.Errorf("snapshotter argument missing: %w", errdefs.ErrInvalidArgument)
	}
	sn := ss.snapshotters.Snapshotter(name)
	if sn == nil {
		return nil, fmt.Errorf("snapshotter not loaded: %s: %w", name, errdefs.ErrInvalidArgument)
	}
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	return sn, nil
}

func (ss *Service) Prepare(ctx context.Context, req *snapshotsapi.PrepareSnapshotRequest) (*snapshotsapi.PrepareSnapshotResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	var opts []snapshots.Opt
	if req.Labels != nil {
		opts = append(opts, snapshots.WithLabels(req.Labels))
	}
	mounts, err := sn.Prepare(ctx, req.Key, req.Parent, opts...)
	if err != nil {
		return nil, err
	}
	events.Tell(ctx, ss.events, ss.log, events.TopicSnapshotPrepare, &apievents.SnapshotPrepare{Key: req.Key, Parent: req.Parent, Snapshotter: req.Snapshotter})
	return &snapshotsapi.PrepareSnapshotResponse{Mounts: protoconv.MountsToProto(mounts)}, nil
}

func (ss *Service) View(ctx context.Context, req *snapshotsapi.ViewSnapshotRequest) (*snapshotsapi.ViewSnapshotResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	var opts []snapshots.Opt
	if req.Labels != nil {
		opts = append(opts, snapshots.WithLabels(req.Labels))
	}
	mounts, err := sn.View(ctx, req.Key, req.Parent, opts...)
	if err != nil {
		return nil, err
	}
	return &snapshotsapi.ViewSnapshotResponse{Mounts: protoconv.MountsToProto(mounts)}, nil
}

func (ss *Service) Mounts(ctx context.Context, req *snapshotsapi.MountsRequest) (*snapshotsapi.MountsResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	mounts, err := sn.Mounts(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	return &snapshotsapi.MountsResponse{Mounts: protoconv.MountsToProto(mounts)}, nil
}

func (ss *Service) Commit(ctx context.Context, req *snapshotsapi.CommitSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	var opts []snapshots.Opt
	if req.Labels != nil {
		opts = append(opts, snapshots.WithLabels(req.Labels))
	}
	if req.Parent != "" {
		// containerd 2.x's rebase: commit onto a parent the snapshot was
		// not prepared on.
		opts = append(opts, snapshots.WithParent(req.Parent))
	}
	if err := sn.Commit(ctx, req.Name, req.Key, opts...); err != nil {
		return nil, err
	}
	events.Tell(ctx, ss.events, ss.log, events.TopicSnapshotCommit, &apievents.SnapshotCommit{Key: req.Key, Name: req.Name, Snapshotter: req.Snapshotter})
	return &emptypb.Empty{}, nil
}

func (ss *Service) Remove(ctx context.Context, req *snapshotsapi.RemoveSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	if err := sn.Remove(ctx, req.Key); err != nil {
		return nil, err
	}
	events.Tell(ctx, ss.events, ss.log, events.TopicSnapshotRemove, &apievents.SnapshotRemove{Key: req.Key, Snapshotter: req.Snapshotter})
	return &emptypb.Empty{}, nil
}

func (ss *Service) Stat(ctx context.Context, req *snapshotsapi.StatSnapshotRequest) (*snapshotsapi.StatSnapshotResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	info, err := sn.Stat(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	return &snapshotsapi.StatSnapshotResponse{Info: protoconv.SnapshotInfoToProto(info)}, nil
}

// Update changes labels: the mask's paths are "labels" or "labels.<key>";
// without a mask all labels are replaced, as in containerd.
func (ss *Service) Update(ctx context.Context, req *snapshotsapi.UpdateSnapshotRequest) (*snapshotsapi.UpdateSnapshotResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	if req.Info == nil {
		return nil, fmt.Errorf("update snapshot: info is required: %w", errdefs.ErrInvalidArgument)
	}
	var paths []string
	if req.UpdateMask != nil {
		paths = req.UpdateMask.Paths
	}
	info, err := sn.Update(ctx, protoconv.SnapshotInfoFromProto(req.Info), paths...)
	if err != nil {
		return nil, err
	}
	return &snapshotsapi.UpdateSnapshotResponse{Info: protoconv.SnapshotInfoToProto(info)}, nil
}

func (ss *Service) List(req *snapshotsapi.ListSnapshotsRequest, stream snapshotsapi.Snapshots_ListServer) error {
	ctx := stream.Context()
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return err
	}
	var batch []*snapshotsapi.Info
	err = sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		batch = append(batch, protoconv.SnapshotInfoToProto(info))
		if len(batch) < snapListBatch {
			return nil
		}
		err := stream.Send(&snapshotsapi.ListSnapshotsResponse{Info: batch})
		batch = nil
		return err
	}, req.Filters...)
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return stream.Send(&snapshotsapi.ListSnapshotsResponse{Info: batch})
	}
	return nil
}

func (ss *Service) Usage(ctx context.Context, req *snapshotsapi.UsageRequest) (*snapshotsapi.UsageResponse, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	u, err := sn.Usage(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	return &snapshotsapi.UsageResponse{Size: u.Size, Inodes: u.Inodes}, nil
}

func (ss *Service) Cleanup(ctx context.Context, req *snapshotsapi.CleanupRequest) (*emptypb.Empty, error) {
	sn, err := ss.snapshotter(ctx, req.Snapshotter)
	if err != nil {
		return nil, err
	}
	if err := sn.Cleanup(ctx); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
