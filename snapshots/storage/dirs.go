package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
)

// Dirs keeps the directories <root>/snapshots/<id> in step with the records
// of a MetaStore; the drivers build on it.
type Dirs struct {
	ms   *MetaStore
	root string // <driver root>/snapshots
	// mu is held for reading while a directory is made or removed, and
	// for writing by Cleanup, which must not take a directory being built
	// for an orphan.
	mu sync.RWMutex
}

// NewDirs returns the directories under root (created when missing).
func NewDirs(ms *MetaStore, root string) (*Dirs, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Dirs{ms: ms, root: root}, nil
}

// Path returns the directory of the snapshot id.
func (d *Dirs) Path(id string) string { return filepath.Join(d.root, id) }

// MetaStore returns the metastore the directories follow.
func (d *Dirs) MetaStore() *MetaStore { return d.ms }

// Create makes a snapshot: fill builds its directory under a temporary name
// (given the ids of parent and its ancestors, nearest first), then the
// record is written and the directory renamed to its id in one transaction.
// Errors are those of Tx.Create and of fill.
func (d *Dirs) Create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt, fill func(dir string, parentIDs []string) error) (Snapshot, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	// Fail fast, before fill does any work.
	var parentIDs []string
	err := d.ms.View(ctx, func(tx *Tx) error {
		if _, err := tx.record(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if parent == "" {
			return nil
		}
		p, err := tx.Get(parent)
		if err != nil {
			return fmt.Errorf("parent of %q: %w", key, err)
		}
		if p.Kind != snapshots.KindCommitted {
			return fmt.Errorf("parent %q of %q is %s, not committed: %w", parent, key, p.Kind, errdefs.ErrFailedPrecondition)
		}
		parentIDs = append([]string{p.ID}, p.ParentIDs...)
		return nil
	})
	if err != nil {
		return Snapshot{}, err
	}
	tmp, err := os.MkdirTemp(d.root, "new-")
	if err != nil {
		return Snapshot{}, err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, err
	}
	if err := fill(tmp, parentIDs); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	var s Snapshot
	err = d.ms.Update(ctx, func(tx *Tx) error {
		var err error
		if s, err = tx.Create(kind, key, parent, opts...); err != nil {
			return err
		}
		return d.renameInto(tmp, d.Path(s.ID))
	})
	if err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, err
	}
	return s, nil
}

// renameInto renames tmp to dst. A directory already at dst belongs to no
// record (ids come from the transaction that is creating it): it is what a
// crash left between a rename and its commit, so it is moved aside.
func (d *Dirs) renameInto(tmp, dst string) error {
	err := os.Rename(tmp, dst)
	if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		stale := filepath.Join(d.root, "rm-stale-"+filepath.Base(dst)+"-"+filepath.Base(tmp))
		if err := os.Rename(dst, stale); err != nil {
			return err
		}
		go os.RemoveAll(stale)
		err = os.Rename(tmp, dst)
	}
	return err
}

// Remove deletes the record of key, then its directory: the record goes
// first, so a crash leaves at worst a directory no record names, never a
// record whose directory is half gone. The directory is renamed before it
// is emptied, so a partly removed tree is never found under an id.
func (d *Dirs) Remove(ctx context.Context, key string) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var id string
	err := d.ms.Update(ctx, func(tx *Tx) error {
		var err error
		id, _, err = tx.Remove(key)
		return err
	})
	if err != nil {
		return err
	}
	trash := filepath.Join(d.root, "rm-"+id)
	if err := os.Rename(d.Path(id), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	return nil
}

// Cleanup removes every directory under the root that no record names:
// leftovers of an interrupted Create or Remove.
func (d *Dirs) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids map[string]string
	if err := d.ms.View(ctx, func(tx *Tx) error {
		var err error
		ids, err = tx.IDs()
		return err
	}); err != nil {
		return err
	}
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := ids[e.Name()]; ok {
			continue
		}
		p := filepath.Join(d.root, e.Name())
		if !strings.HasPrefix(e.Name(), "rm-") {
			// Out of sight first, as Remove does.
			trash := filepath.Join(d.root, "rm-"+e.Name())
			if err := os.Rename(p, trash); err == nil {
				p = trash
			}
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DiskUsage measures the tree at dir: the bytes of its regular files and
// the number of its distinct inodes (dir included), each hardlinked file
// counted once.
func DiskUsage(ctx context.Context, dir string) (snapshots.Usage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]struct{}{}
	var u snapshots.Usage
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		k := inode{uint64(st.Dev), st.Ino}
		if _, ok := seen[k]; ok {
			return nil
		}
		seen[k] = struct{}{}
		u.Inodes++
		if fi.Mode().IsRegular() {
			u.Size += fi.Size()
		}
		return nil
	})
	if err != nil {
		return snapshots.Usage{}, fmt.Errorf("usage of %s: %w", dir, err)
	}
	return u, nil
}

// Close closes the metastore (and gives up its lock).
func (d *Dirs) Close() error { return d.ms.Close() }

// OpenRoot opens (creating) a driver's root: <root>/metadata.db, its
// lock taken first (only the lock's owner may touch what is mounted under
// root), then the stale mounts a crashed owner left under root unmounted,
// then <root>/snapshots. Close the Dirs' metastore (Base.Close) when done.
func OpenRoot(root string) (*Dirs, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	ms, err := NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	if err := mount.UnmountUnder(root); err != nil {
		ms.Close()
		return nil, fmt.Errorf("snapshotter %s: unmount stale mounts: %w", root, err)
	}
	dirs, err := NewDirs(ms, filepath.Join(root, "snapshots"))
	if err != nil {
		ms.Close()
		return nil, err
	}
	return dirs, nil
}
