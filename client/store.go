package client

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/snapshots"
)

// Store is the daemon's store as the pipelines take it (pull.Store,
// push.Store, ocilayout.Store, unpack.Store, jobs.Store): its content,
// image, lease and snapshot services through one connection, so that a
// pull, push, import or unpack runs in this process against the daemon's
// stores as it runs in the daemon against its own.
type Store struct {
	conn grpc.ClientConnInterface
	info jobs.Info
}

// NewStore returns the store of the daemon on conn, asking it once which
// snapshotters it has. The connection stays the caller's.
func NewStore(ctx context.Context, conn grpc.ClientConnInterface) (*Store, error) {
	res, err := RunJob(ctx, conn, jobs.Request{Info: &jobs.InfoRequest{}}, jobs.Env{})
	if err != nil {
		return nil, fmt.Errorf("store of the daemon: %w", err)
	}
	return &Store{conn: conn, info: *res.Info}, nil
}

// Info is what the daemon said its store is.
func (s *Store) Info() jobs.Info { return s.info }

// Content returns the daemon's content store.
func (s *Store) Content() content.Store { return NewContentStore(s.conn) }

// Images returns the daemon's image store.
func (s *Store) Images() images.Store { return NewImageStore(s.conn) }

// Leases returns the daemon's lease manager; its HoldExisting adds the
// resource to the lease first and then looks for it, releasing it when it
// is not there: held from before the look, nothing collects it in between.
func (s *Store) Leases() leases.Holder {
	return &holdingLeases{LeaseManager: NewLeaseManager(s.conn), s: s}
}

// ResolveSnapshotter returns the daemon's snapshotter name ("" for its
// default) and the name it resolved to: errdefs.ErrUnavailable saying why
// for overlayfs where it does not work, errdefs.ErrInvalidArgument for a
// name the daemon does not have.
func (s *Store) ResolveSnapshotter(name string) (string, snapshots.Snapshotter, error) {
	if name == "" {
		name = s.info.DefaultSnapshotter
	}
	if slices.Contains(s.info.Snapshotters, name) {
		sn := NewSnapshotter(s.conn, name)
		sn.rebase = slices.Contains(s.info.Rebase, name)
		return name, sn, nil
	}
	if name == "overlayfs" && s.info.OverlayUnavailable != "" {
		return "", nil, fmt.Errorf("snapshotter overlayfs: %s: %w", s.info.OverlayUnavailable, errdefs.ErrUnavailable)
	}
	return "", nil, fmt.Errorf("snapshotter %q: not one of %v: %w", name, s.info.Snapshotters, errdefs.ErrInvalidArgument)
}

// holdingLeases is a leases.Holder over the leases service, which has no
// HoldExisting call.
type holdingLeases struct {
	*LeaseManager
	s *Store
}

// HoldExisting makes lease hold r if r (a blob or a snapshot) exists:
// errdefs.ErrNotFound naming r otherwise.
func (h *holdingLeases) HoldExisting(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	var exists func(context.Context) error
	switch {
	case r.Type == "content":
		exists = func(ctx context.Context) error {
			d, err := digest.Parse(r.ID)
			if err != nil {
				return fmt.Errorf("hold content %q: %v: %w", r.ID, err, errdefs.ErrInvalidArgument)
			}
			_, err = h.s.Content().Info(ctx, d)
			return err
		}
	case strings.HasPrefix(r.Type, "snapshots/"):
		exists = func(ctx context.Context) error {
			_, err := NewSnapshotter(h.s.conn, strings.TrimPrefix(r.Type, "snapshots/")).Stat(ctx, r.ID)
			return err
		}
	default:
		return fmt.Errorf("hold %s %q: only blobs and snapshots: %w", r.Type, r.ID, errdefs.ErrInvalidArgument)
	}
	if err := h.AddResource(ctx, lease, r); err != nil {
		return err
	}
	err := exists(ctx)
	if err == nil {
		return nil
	}
	if rerr := h.DeleteResource(context.WithoutCancel(ctx), lease, r); rerr != nil && !errdefs.IsNotFound(rerr) {
		return fmt.Errorf("hold %s %q: %w (release: %w)", r.Type, r.ID, err, rerr)
	}
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%s %q: %w", r.Type, r.ID, errdefs.ErrNotFound)
	}
	return err
}
