// Package wiring builds strata's object graph on a root directory: the blob
// store, the snapshotters (<root>/snapshots/overlayfs and
// <root>/snapshots/native) and the metadata database over them. stratad and
// the CLI's embedded mode both open a root through it.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/native"
	"github.com/strata-oci/strata/snapshots/overlay"
)

// Config says where the store lives and how it behaves.
type Config struct {
	Root   string
	Logger *slog.Logger
	// GCDelay is the debounce of scheduled collections; zero means 100ms.
	GCDelay time.Duration
	// Snapshotter is the default snapshotter: "overlayfs", "native", or
	// "" for overlayfs where it works under the root and native elsewhere.
	Snapshotter string
	// Holder says who opens the root ("stratad", "strata pull"), for the
	// processes that find it locked. Only a root held by a "strata …"
	// command is waited for: daemons never let go on their own.
	Holder string
	// LockTimeout is how long Open waits for a root another strata command
	// holds: 0 not at all, < 0 without limit. OnLockWait, when set, is
	// called once when Open starts waiting, with the holder's pid and name.
	LockTimeout time.Duration
	OnLockWait  func(holder string)
	// MinFree is the free space collections keep on the content store's
	// filesystem by dropping partial downloads (see metadata.WithMinFree).
	MinFree metadata.MinFree
	// SharingPolicy is how blobs are shared across namespaces
	// (metadata.WithSharingPolicy); zero is shared, containerd's default.
	SharingPolicy metadata.SharingPolicy
}

// The snapshotters a store has: which exist is decided here only.
const (
	overlayName = "overlayfs"
	nativeName  = "native"
)

// SnapshotterKinds are the names of the snapshotters a root can have, the
// preferred first.
var SnapshotterKinds = []string{overlayName, nativeName}

// Store is an open root.
type Store struct {
	Root  string
	Blobs *local.Store
	DB    *metadata.DB
	// DefaultSnapshotter is "overlayfs", or "native" where overlayfs does
	// not work under the root.
	DefaultSnapshotter string
	// OverlayUnavailable says why overlayfs is not registered, if it is not.
	OverlayUnavailable error

	lock *rootLock
}

// Snapshotter returns the namespaced snapshotter name ("" for the
// default), or nil when there is none by that name.
func (s *Store) Snapshotter(name string) snapshots.Snapshotter {
	if name == "" {
		name = s.DefaultSnapshotter
	}
	return s.DB.Snapshotter(name)
}

// The methods below are what the pipelines (pull, push, import, jobs) take
// of a store, through the small interfaces they declare; client.Store has
// them too, over the daemon's socket.

// Content returns the namespaced content store.
func (s *Store) Content() content.Store { return s.DB.ContentStore() }

// Images returns the namespaced image store.
func (s *Store) Images() images.Store { return s.DB.Images() }

// Leases returns the lease manager, which holds what exists in one step.
func (s *Store) Leases() leases.Holder { return s.DB.Leases() }

// ResolveSnapshotter returns the snapshotter name ("" for the default)
// and the name it resolved to. overlayfs where it does not work is its
// reason (errdefs.ErrUnavailable or the like); a name the store does not
// have is errdefs.ErrInvalidArgument.
func (s *Store) ResolveSnapshotter(name string) (string, snapshots.Snapshotter, error) {
	if name == "" {
		name = s.DefaultSnapshotter
	}
	if sn := s.DB.Snapshotter(name); sn != nil {
		return name, sn, nil
	}
	if name == overlayName && s.OverlayUnavailable != nil {
		return "", nil, fmt.Errorf("snapshotter %s: %w", overlayName, s.OverlayUnavailable)
	}
	return "", nil, fmt.Errorf("snapshotter %q: not one of %v: %w", name, s.DB.SnapshotterNames(), errdefs.ErrInvalidArgument)
}

// Describe returns the store's root and why overlayfs is not among its
// snapshotters (nil when it is).
func (s *Store) Describe() (root string, overlayUnavailable error) {
	return s.Root, s.OverlayUnavailable
}

// SnapshotterNames lists the snapshotters the store has.
func (s *Store) SnapshotterNames() []string { return s.DB.SnapshotterNames() }

// GarbageCollect runs a collection now (metadata.DB.GarbageCollect).
func (s *Store) GarbageCollect(ctx context.Context, o metadata.GCOptions) (gc.Stats, error) {
	return s.DB.GarbageCollect(ctx, o)
}

// Fsck checks the store and with repair mends it (metadata.DB.Fsck).
func (s *Store) Fsck(ctx context.Context, repair bool) (metadata.FsckReport, error) {
	return s.DB.Fsck(ctx, repair)
}

// Open opens (creating when needed) the store at cfg.Root.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("store root must not be empty")
	}
	switch cfg.Snapshotter {
	case "", overlayName, nativeName:
	default:
		return nil, fmt.Errorf("default snapshotter %q: want overlayfs or native: %w", cfg.Snapshotter, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(cfg.Root, 0o711); err != nil {
		return nil, fmt.Errorf("store root %s: %w", cfg.Root, err)
	}
	lock, err := lockRoot(ctx, cfg.Root, cfg)
	if err != nil {
		return nil, err
	}
	st, err := open(ctx, cfg)
	if err != nil {
		lock.release()
		return nil, err
	}
	st.lock = lock
	return st, nil
}

// open opens the parts of a root whose lock this process holds.
func open(ctx context.Context, cfg Config) (*Store, error) {
	blobs, err := local.New(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, err
	}
	var opts []metadata.Opt
	if cfg.Logger != nil {
		opts = append(opts, metadata.WithLogger(cfg.Logger))
	}
	// Snapshotters lock their own databases before touching their mounts,
	// so a second process fails here without disturbing the first.
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	defaultSnapshotter := overlayName
	ov, ovErr := overlay.New(filepath.Join(cfg.Root, "snapshots", overlayName))
	if ovErr == nil {
		opts = append(opts, metadata.WithSnapshotter(overlayName, ov))
		closers = append(closers, ov.Close)
	} else {
		if errors.Is(ovErr, errdefs.ErrUnavailable) {
			return nil, ovErr
		}
		if cfg.Snapshotter == overlayName {
			return nil, fmt.Errorf("default snapshotter overlayfs: %w", ovErr)
		}
		defaultSnapshotter = nativeName
		if cfg.Logger != nil {
			cfg.Logger.Warn("overlayfs snapshotter unavailable, using native (full copies)", "error", ovErr)
		}
	}
	nat, err := native.New(filepath.Join(cfg.Root, "snapshots", nativeName))
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, nat.Close)
	opts = append(opts, metadata.WithSnapshotter(nativeName, nat))
	if cfg.GCDelay != 0 {
		opts = append(opts, metadata.WithGCDelay(cfg.GCDelay))
	}
	opts = append(opts, metadata.WithSharingPolicy(cfg.SharingPolicy))
	if !cfg.MinFree.IsZero() {
		opts = append(opts, metadata.WithMinFree(cfg.MinFree))
	}
	db, err := metadata.Open(ctx, filepath.Join(cfg.Root, "metadata.db"), blobs, opts...)
	if err != nil {
		closeAll()
		return nil, err
	}
	// Only now, holding the database lock, is this process the owner.
	if err := blobs.RemoveBrokenIngests(); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.Snapshotter != "" {
		defaultSnapshotter = cfg.Snapshotter
	}
	return &Store{Root: cfg.Root, Blobs: blobs, DB: db, DefaultSnapshotter: defaultSnapshotter, OverlayUnavailable: ovErr}, nil
}

// Close closes the store, running a pending garbage collection first, and
// gives up the root's lock.
func (s *Store) Close() error {
	err := s.DB.Close()
	if s.lock != nil {
		if lerr := s.lock.release(); lerr != nil && err == nil {
			err = lerr
		}
	}
	return err
}
