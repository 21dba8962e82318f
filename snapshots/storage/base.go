package storage

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/snapshots"
)

// Base implements the Snapshotter methods that every driver keeping one
// directory per snapshot (<id>/fs) shares: all but Prepare, View and
// Mounts. Drivers embed it.
type Base struct {
	Dirs *Dirs
	// Rebase says committed directories hold only their own layer, so
	// Commit may take snapshots.WithParent (overlayfs); without it such a
	// Commit returns errdefs.ErrNotImplemented.
	Rebase bool
}

// CanRebase says whether Commit accepts snapshots.WithParent (the
// optional snapshots.Rebaser).
func (b *Base) CanRebase() bool { return b.Rebase }

// FS returns the tree directory of the snapshot id.
func (b *Base) FS(id string) string { return filepath.Join(b.Dirs.Path(id), "fs") }

// Stat returns the snapshot key.
func (b *Base) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	var info snapshots.Info
	err := b.Dirs.ms.View(ctx, func(tx *Tx) error {
		var err error
		_, info, _, err = tx.Info(key)
		return err
	})
	return info, err
}

// Update changes the labels of info.Name.
func (b *Base) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	var out snapshots.Info
	err := b.Dirs.ms.Update(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.Update(info, fieldpaths...)
		return err
	})
	return out, err
}

// Usage returns the usage of key: an active snapshot's tree is measured
// now; a committed one's is measured once, the first time it is asked for
// (a committed tree never changes), and recorded.
func (b *Base) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	var (
		id    string
		info  snapshots.Info
		usage snapshots.Usage
	)
	err := b.Dirs.ms.View(ctx, func(tx *Tx) error {
		var err error
		id, info, usage, err = tx.Info(key)
		return err
	})
	if err != nil {
		return usage, err
	}
	if info.Kind == snapshots.KindCommitted && usage.Size >= 0 {
		return usage, nil
	}
	usage, err = DiskUsage(ctx, b.FS(id))
	if err != nil || info.Kind != snapshots.KindCommitted {
		return usage, err
	}
	err = b.Dirs.ms.Update(ctx, func(tx *Tx) error { return tx.SetUsage(key, usage) })
	if errdefs.IsNotFound(err) {
		err = nil // removed meanwhile; the figure stands
	}
	return usage, err
}

// Commit records the active snapshot key as name. Its usage is measured
// when first asked for, not here: walking every file of a layer just
// unpacked would lengthen every pull (50,000 lstat calls for a layer of
// 50,000 files).
func (b *Base) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	var s Snapshot
	err := b.Dirs.ms.View(ctx, func(tx *Tx) error {
		var err error
		s, err = tx.Get(key)
		return err
	})
	if err != nil {
		return err
	}
	if s.Kind != snapshots.KindActive {
		return fmt.Errorf("commit snapshot %q: it is %s, not active: %w", key, s.Kind, errdefs.ErrFailedPrecondition)
	}
	if !b.Rebase {
		info, err := snapshots.ApplyOpts(opts...)
		if err != nil {
			return err
		}
		if info.Parent != "" && len(s.ParentIDs) == 0 {
			return fmt.Errorf("commit %q on parent %q: this snapshotter cannot stack a snapshot on a parent after it was prepared: %w", key, info.Parent, errdefs.ErrNotImplemented)
		}
	}
	unknown := snapshots.Usage{Size: -1, Inodes: -1}
	return b.Dirs.ms.Update(ctx, func(tx *Tx) error {
		_, err := tx.Commit(key, name, unknown, opts...)
		return err
	})
}

// Remove removes the snapshot key and its directory.
func (b *Base) Remove(ctx context.Context, key string) error { return b.Dirs.Remove(ctx, key) }

// Walk calls fn for each snapshot matching any of fs. fn runs after the
// read transaction, so it may call the snapshotter.
func (b *Base) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	var infos []snapshots.Info
	err := b.Dirs.ms.View(ctx, func(tx *Tx) error {
		return tx.Walk(ctx, func(info snapshots.Info) error {
			infos = append(infos, info)
			return nil
		}, fs...)
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup removes directories no snapshot record names.
func (b *Base) Cleanup(ctx context.Context) error { return b.Dirs.Cleanup(ctx) }

// Close closes the metastore.
func (b *Base) Close() error { return b.Dirs.Close() }

// Mountable returns the active snapshot or view key; a committed snapshot
// has no mounts of its own (errdefs.ErrFailedPrecondition).
func (b *Base) Mountable(ctx context.Context, key string) (Snapshot, error) {
	s, err := b.Get(ctx, key)
	if err != nil {
		return s, err
	}
	if s.Kind == snapshots.KindCommitted {
		return s, fmt.Errorf("mounts of snapshot %q: it is committed; View or Prepare on it: %w", key, errdefs.ErrFailedPrecondition)
	}
	return s, nil
}

// Get returns the snapshot key for mounting.
func (b *Base) Get(ctx context.Context, key string) (Snapshot, error) {
	var s Snapshot
	err := b.Dirs.ms.View(ctx, func(tx *Tx) error {
		var err error
		s, err = tx.Get(key)
		return err
	})
	return s, err
}
