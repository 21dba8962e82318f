package client

import (
	"context"
	"errors"
	"io"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/protoconv"
	"github.com/strata-oci/strata/snapshots"
)

// Snapshotter is a snapshots.Snapshotter served by a daemon: every call
// goes to the snapshots service for one snapshotter name, in the namespace
// (and under the lease) of its context. Errors keep their errdefs class
// across the socket.
type Snapshotter struct {
	client snapshotsapi.SnapshotsClient
	name   string
	rebase bool
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Rebaser     = (*Snapshotter)(nil)
)

// CanRebase says whether the daemon's snapshotter accepts
// snapshots.WithParent at Commit: as Store.ResolveSnapshotter learnt from
// the daemon; false for one from NewSnapshotter.
func (s *Snapshotter) CanRebase() bool { return s.rebase }

// NewSnapshotter returns the daemon's snapshotter name ("overlayfs",
// "native") reached through conn. The connection stays the caller's.
func NewSnapshotter(conn grpc.ClientConnInterface, name string) *Snapshotter {
	return &Snapshotter{client: snapshotsapi.NewSnapshotsClient(conn), name: name}
}

// snapshotsContext carries the namespace and lease of ctx to the daemon in
// the call's metadata.
func snapshotsContext(ctx context.Context) context.Context {
	ctx = withNamespaceHeader(ctx)
	if id, ok := leases.FromContext(ctx); ok {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Set(leases.GRPCHeader, id)
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	return ctx
}

// Stat returns the snapshot key; errdefs.ErrNotFound when there is none.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	resp, err := s.client.Stat(snapshotsContext(ctx), &snapshotsapi.StatSnapshotRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshots.Info{}, errgrpc.ToNative(err)
	}
	return protoconv.SnapshotInfoFromProto(resp.Info), nil
}

// Update changes the labels of info.Name as snapshots.Snapshotter says.
func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	req := &snapshotsapi.UpdateSnapshotRequest{Snapshotter: s.name, Info: protoconv.SnapshotInfoToProto(info)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(snapshotsContext(ctx), req)
	if err != nil {
		return snapshots.Info{}, errgrpc.ToNative(err)
	}
	return protoconv.SnapshotInfoFromProto(resp.Info), nil
}

// Usage returns the space the snapshot key takes itself.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	resp, err := s.client.Usage(snapshotsContext(ctx), &snapshotsapi.UsageRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshots.Usage{}, errgrpc.ToNative(err)
	}
	return snapshots.Usage{Size: resp.Size, Inodes: resp.Inodes}, nil
}

// Mounts returns the mounts of an active snapshot or view.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	resp, err := s.client.Mounts(snapshotsContext(ctx), &snapshotsapi.MountsRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	return protoconv.MountsFromProto(resp.Mounts)
}

// Prepare creates the active snapshot key on parent. Of opts, only labels
// travel: WithParent is for Commit.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	info, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Prepare(snapshotsContext(ctx), &snapshotsapi.PrepareSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: info.Labels})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	return protoconv.MountsFromProto(resp.Mounts)
}

// View creates the read-only snapshot key on parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	info, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.View(snapshotsContext(ctx), &snapshotsapi.ViewSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: info.Labels})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	return protoconv.MountsFromProto(resp.Mounts)
}

// Commit commits the active snapshot key as name, onto the parent of
// snapshots.WithParent when given.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	info, err := snapshots.ApplyOpts(opts...)
	if err != nil {
		return err
	}
	_, err = s.client.Commit(snapshotsContext(ctx), &snapshotsapi.CommitSnapshotRequest{Snapshotter: s.name, Name: name, Key: key, Labels: info.Labels, Parent: info.Parent})
	return errgrpc.ToNative(err)
}

// Remove removes the snapshot key.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	_, err := s.client.Remove(snapshotsContext(ctx), &snapshotsapi.RemoveSnapshotRequest{Snapshotter: s.name, Key: key})
	return errgrpc.ToNative(err)
}

// Walk calls fn for each snapshot matching any of filters, as the daemon
// streams them.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	if err := checkFilters(fs); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when fn stops the walk early
	stream, err := s.client.List(snapshotsContext(ctx), &snapshotsapi.ListSnapshotsRequest{Snapshotter: s.name, Filters: fs})
	if err != nil {
		return errgrpc.ToNative(err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errgrpc.ToNative(err)
		}
		for _, info := range resp.Info {
			if err := fn(ctx, protoconv.SnapshotInfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

// Cleanup asks the daemon to free what no snapshot uses.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	_, err := s.client.Cleanup(snapshotsContext(ctx), &snapshotsapi.CleanupRequest{Snapshotter: s.name})
	return errgrpc.ToNative(err)
}

// Close does nothing: the snapshotter belongs to the daemon and the
// connection to the caller.
func (s *Snapshotter) Close() error { return nil }
