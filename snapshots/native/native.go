// Package native is the snapshotter for filesystems overlayfs cannot stack
// on (overlayfs itself, some network filesystems): each snapshot is a full
// copy of its parent's tree, made with reflinks (FICLONE) where the
// filesystem shares extents (btrfs, xfs with reflink=1) and with
// copy_file_range otherwise.
//
//	<root>/                      /var/lib/strata/snapshots/native
//	  metadata.db                snapshots/storage records: key → id
//	  snapshots/<id>/fs/         the whole tree
//
// Mounts are bind mounts: an active snapshot binds its own tree read-write;
// a view binds its parent's committed tree read-only (committed trees never
// change, so a view needs no copy).
package native

import (
	"context"
	"os"
	"path/filepath"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/storage"
)

// Snapshotter is the copying snapshotter.
type Snapshotter struct {
	storage.Base
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Rebaser     = (*Snapshotter)(nil)
)

// Opt configures a Snapshotter; there are none yet.
type Opt func(*options) error

type options struct{}

// New opens (creating) the native snapshotter at root. Stale mounts under
// root, left by a crashed process, are unmounted.
func New(root string, opts ...Opt) (*Snapshotter, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	dirs, err := storage.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	return &Snapshotter{Base: storage.Base{Dirs: dirs}}, nil
}

// Prepare creates an active snapshot holding a copy of parent's tree.
func (n *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	s, err := n.Dirs.Create(ctx, snapshots.KindActive, key, parent, opts, func(dir string, parentIDs []string) error {
		fs := filepath.Join(dir, "fs")
		if err := os.Mkdir(fs, 0o755); err != nil {
			return err
		}
		if len(parentIDs) == 0 {
			return nil
		}
		return copyTree(ctx, n.FS(parentIDs[0]), fs)
	})
	if err != nil {
		return nil, err
	}
	return n.mounts(s), nil
}

// View creates a read-only snapshot of parent.
func (n *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	s, err := n.Dirs.Create(ctx, snapshots.KindView, key, parent, opts, func(dir string, _ []string) error {
		return os.Mkdir(filepath.Join(dir, "fs"), 0o755)
	})
	if err != nil {
		return nil, err
	}
	return n.mounts(s), nil
}

// Mounts returns the mounts of an active snapshot or view.
func (n *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	s, err := n.Mountable(ctx, key)
	if err != nil {
		return nil, err
	}
	return n.mounts(s), nil
}

func (n *Snapshotter) mounts(s storage.Snapshot) []mount.Mount {
	if s.Kind == snapshots.KindActive {
		return []mount.Mount{{Type: "bind", Source: n.FS(s.ID), Options: []string{"rw", "rbind"}}}
	}
	src := n.FS(s.ID)
	if len(s.ParentIDs) > 0 {
		src = n.FS(s.ParentIDs[0])
	}
	return []mount.Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}
}
