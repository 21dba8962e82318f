// Package snapshots defines the Snapshotter, which keeps directory trees as
// stacks of copy-on-write layers, with containerd's semantics so that the
// same clients (ctr, BuildKit, the CRI) can drive it.
//
// A snapshot is identified by a key. It is one of three kinds:
//
//	active     writable; made by Prepare, becomes committed by Commit
//	view       read-only; made by View, can only be removed
//	committed  immutable; made by Commit under a name (the chain ID of a
//	           layer stack), the only kind that can be a parent
//
// Committed snapshots form a tree through their parents; an image's rootfs
// is a path in it. A snapshot cannot be removed while it has children.
//
// Implementations: snapshots/overlay (default, overlayfs), snapshots/native
// (full copies, for filesystems overlayfs cannot stack on), and the
// namespaced wrapper in metadata. Each keeps its records in a
// snapshots/storage metastore and its trees under its root:
//
//	<root>/                       e.g. /var/lib/strata/snapshots/overlayfs
//	  metadata.db                 snapshots/storage: key → id, kind, parent, labels, times
//	  snapshots/
//	    <id>/                     one per snapshot; ids are short decimal numbers
//	      fs/                     the tree (overlay: the upper directory)
//	      work/                   overlay's work directory (overlay only)
//	    new-<random>/             a snapshot being created (removed by Cleanup)
//	    rm-<id>/                  a snapshot being removed (removed by Cleanup)
//
// All implementations pass the conformance suite in snapshots/snapshottest.
package snapshots

import (
	"context"
	"strings"
	"time"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/mount"
)

// Kind is the kind of a snapshot.
type Kind uint8

// The kinds of snapshots; see the package documentation.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

// String returns "view", "active", "committed" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// ParseKind parses the String form of a kind, ignoring case. It returns
// KindUnknown for anything else.
func ParseKind(s string) Kind {
	switch strings.ToLower(s) {
	case "view":
		return KindView
	case "active":
		return KindActive
	case "committed":
		return KindCommitted
	}
	return KindUnknown
}

// Info describes a snapshot.
type Info struct {
	Kind Kind
	// Name is the key of an active snapshot or view, or the name of a
	// committed one.
	Name string
	// Parent is the name of the committed parent; empty for a base.
	Parent  string
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk space a snapshot takes itself, without its parents.
type Usage struct {
	// Size is the bytes of the regular files in the snapshot's own layer,
	// each hardlinked file counted once.
	Size int64
	// Inodes counts the distinct files, directories, links and whiteouts
	// of the layer, its top directory included.
	Inodes int64
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.Size += u2.Size
	u.Inodes += u2.Inodes
}

// Opt sets properties of a snapshot being prepared, viewed or committed.
type Opt func(*Info) error

// WithLabels merges labels into the snapshot's labels.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// WithParent, given to Commit, stacks the committed snapshot on parent (a
// committed snapshot) although it was prepared without one: a layer can
// then be unpacked into an empty directory while the layers below it are
// still being unpacked, and be put in its place afterwards ("rebase", as
// containerd 2.x calls it). Only snapshotters whose committed directories
// hold just their own layer (overlayfs) accept it; others return
// errdefs.ErrNotImplemented.
func WithParent(parent string) Opt {
	return func(info *Info) error {
		info.Parent = parent
		return nil
	}
}

// Rebaser is the optional interface of a snapshotter that may accept
// WithParent at Commit ("rebase"): an unpacker then applies every layer of
// an image at once, each into a snapshot prepared on nothing, and stacks
// them in chain order as they commit. A snapshotter that does not
// implement it, or whose CanRebase is false, gets its layers applied one
// after the other, each prepared on its parent. Wrappers (the metadata
// store's namespaced view, the daemon's client) implement it by asking
// what they wrap.
type Rebaser interface {
	// CanRebase reports whether Commit accepts WithParent.
	CanRebase() bool
}

// CanRebase reports whether sn implements Rebaser and says it can.
func CanRebase(sn Snapshotter) bool {
	r, ok := sn.(Rebaser)
	return ok && r.CanRebase()
}

// WalkFunc is called by Walk for each snapshot; an error stops the walk.
type WalkFunc func(context.Context, Info) error

// Snapshotter keeps snapshots and tells how to mount them.
//
// Lifecycle: unpacking an image's layers, then running a container on it.
// Each layer is applied into an active snapshot on top of the previous
// layer's committed one and committed under its chain ID:
//
//	// Layer 1: an active snapshot with no parent, an empty writable tree.
//	mounts, err := sn.Prepare(ctx, "extract-1", "")
//	mount.WithTempMount(ctx, mounts, func(root string) error {
//		return archive.Apply(ctx, root, layer1) // write the layer's files
//	})
//	err = sn.Commit(ctx, chainID1, "extract-1")
//	// errdefs.ErrAlreadyExists: another unpack committed the same layer
//	// first; Remove "extract-1" and use chainID1.
//
//	// Layer 2: the parent's files show through; deletions are whiteouts.
//	mounts, err = sn.Prepare(ctx, "extract-2", chainID1)
//	...
//	err = sn.Commit(ctx, chainID2, "extract-2")
//
//	// A container's rootfs: a writable layer over the image.
//	mounts, err = sn.Prepare(ctx, "container-1", chainID2)
//	mount.All(mounts, "/run/container-1/rootfs")
//	...
//	mount.UnmountAll("/run/container-1/rootfs", 0)
//	err = sn.Remove(ctx, "container-1")
//
//	// A read-only look at the image (e.g. to read its /etc/passwd):
//	mounts, err = sn.View(ctx, "inspect-1", chainID2)
//
// The committed snapshots are removed children first: Remove of chainID1
// returns errdefs.ErrFailedPrecondition while chainID2 exists.
//
// Mounts stay valid until the snapshot is removed; the Snapshotter does not
// track who mounted what. Callers must unmount before Remove.
type Snapshotter interface {
	// Stat returns the snapshot key, or errdefs.ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Update changes the labels of info.Name: the field paths "labels"
	// (replace all) and "labels.<key>" (set, or remove when empty); with
	// none it replaces all labels. Other paths return
	// errdefs.ErrInvalidArgument; an unknown name errdefs.ErrNotFound.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Usage returns the space the snapshot takes itself. For an active
	// snapshot it is measured now, which may take a while.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts of an active snapshot or view again;
	// errdefs.ErrFailedPrecondition for a committed one.
	Mounts(ctx context.Context, key string) ([]mount.Mount, error)
	// Prepare creates an active snapshot key on top of the committed
	// parent ("" for none) and returns how to mount it. It returns
	// errdefs.ErrAlreadyExists when key exists, errdefs.ErrNotFound when
	// parent does not, and errdefs.ErrFailedPrecondition when parent is
	// not committed.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// View is Prepare for a read-only snapshot, which cannot be committed.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name; key no longer exists afterwards. Callers must unmount key
	// first. It returns errdefs.ErrAlreadyExists when name exists,
	// errdefs.ErrNotFound when key does not, and
	// errdefs.ErrFailedPrecondition when key is not active.
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove removes the snapshot key and its files. It returns
	// errdefs.ErrFailedPrecondition while key has children and
	// errdefs.ErrNotFound when there is no such snapshot.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for each snapshot matching any of filters (fields:
	// kind, name, parent, labels.<key>).
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	// Cleanup frees what no snapshot uses: directories left by an
	// interrupted Prepare or Remove.
	Cleanup(ctx context.Context) error
	// Close releases the snapshotter's resources.
	Close() error
}

// AdaptInfo maps filter field paths onto info: kind, name, parent,
// labels.<key>.
func AdaptInfo(info Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "kind":
			return info.Kind.String(), true
		case "name":
			return info.Name, true
		case "parent":
			return info.Parent, info.Parent != ""
		case "labels":
			return filters.LabelField(info.Labels, fieldpath)
		}
		return "", false
	})
}

// ApplyOpts returns the info that opts make from an empty one.
func ApplyOpts(opts ...Opt) (Info, error) {
	var info Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return info, err
		}
	}
	return info, nil
}

// UpdatePaths returns the field paths an Update means: all labels when it
// names none.
func UpdatePaths(fieldpaths []string) []string {
	if len(fieldpaths) == 0 {
		return []string{"labels"}
	}
	return fieldpaths
}
