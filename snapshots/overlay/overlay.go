// Package overlay is the default snapshotter: each snapshot is one
// overlayfs layer, a directory of its own, and a stack of them mounts as one
// tree.
//
//	<root>/                      /var/lib/strata/snapshots/overlayfs
//	  metadata.db                snapshots/storage records: key → id
//	  snapshots/<id>/
//	    fs/                      the layer: upperdir while active, a lowerdir once committed
//	    work/                    overlayfs's workdir
//
// How each snapshot mounts (lowerdirs newest first):
//
//	active, no parent        bind <id>/fs, rw
//	active on a parent       overlay lowerdir=<p1>/fs:<p2>/fs:...,upperdir=<id>/fs,workdir=<id>/work
//	view of one layer        bind <p1>/fs, ro
//	view of several layers   overlay lowerdir=<p1>/fs:<p2>/fs:... (read-only by construction)
//
// Commit renames nothing: the committed snapshot keeps its id and directory,
// so layers can be unpacked in parallel and committed in chain order.
// Stacks deeper than a page of mount options mount through mount's long
// overlay support (see package mount).
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/storage"
)

// Snapshotter is the overlayfs snapshotter.
type Snapshotter struct {
	storage.Base
	root string
	// options go first in every overlay mount: index=off and the like,
	// as found by New.
	options []string
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Rebaser     = (*Snapshotter)(nil)
)

// Opt configures a Snapshotter.
type Opt func(*options) error

type options struct {
	mountOptions []string
}

// WithMountOptions adds options to every overlay mount, after the ones New
// finds necessary.
func WithMountOptions(opts ...string) Opt {
	return func(o *options) error { o.mountOptions = append(o.mountOptions, opts...); return nil }
}

// New opens (creating) the overlay snapshotter at root. It first checks
// that overlayfs works there by mounting a small overlay, and returns an
// error saying why when it does not (no overlay module, root on a
// filesystem overlayfs cannot use as upper layer, no privilege); use
// snapshots/native then. Stale mounts under root, left by a crashed
// process, are unmounted.
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
	mopts, err := Supported(root)
	if err != nil {
		dirs.Close()
		return nil, err
	}
	return &Snapshotter{Base: storage.Base{Dirs: dirs, Rebase: true}, root: root, options: append(mopts, o.mountOptions...)}, nil
}

const overlayMagic = 0x794c7630 // OVERLAYFS_SUPER_MAGIC

// Supported checks that overlay mounts work with upper directories under
// root and returns the options they need: index=off where the kernel has
// the index feature (a lower directory shared by several overlays must not
// be tied to one upper), redirect_dir=off and metacopy=off where they are
// on by default (an upper directory must be a self-contained layer, not
// point into its lowers), userxattr inside a user namespace.
func Supported(root string) ([]string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("overlayfs unavailable: %w", err)
	}
	if st.Type == overlayMagic {
		return nil, fmt.Errorf("overlayfs unavailable: %s is itself on overlayfs, which cannot hold upper directories (give a root on ext4, xfs or btrfs, or use the native snapshotter)", root)
	}
	var opts []string
	if exists("/sys/module/overlay/parameters/index") {
		opts = append(opts, "index=off")
	}
	if paramOn("redirect_dir") || paramOn("metacopy") {
		opts = append(opts, "redirect_dir=off")
	}
	if paramOn("metacopy") {
		opts = append(opts, "metacopy=off")
	}
	if inUserNS() {
		opts = append(opts, "userxattr")
	}
	dir, err := os.MkdirTemp(root, "check-")
	if err != nil {
		return nil, fmt.Errorf("overlayfs unavailable: %w", err)
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("overlayfs unavailable: %w", err)
		}
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: append(append([]string(nil), opts...),
		"lowerdir="+filepath.Join(dir, "l2")+":"+filepath.Join(dir, "l1"),
		"upperdir="+filepath.Join(dir, "u"), "workdir="+filepath.Join(dir, "w"))}
	target := filepath.Join(dir, "m")
	if err := m.Mount(target); err != nil {
		why := ""
		switch {
		case !exists("/sys/module/overlay") && !filesystemKnown("overlay"):
			why = " (the kernel has no overlay filesystem: modprobe overlay)"
		case os.Geteuid() != 0 && !inUserNS():
			why = " (mounting needs root or CAP_SYS_ADMIN)"
		}
		return nil, fmt.Errorf("overlayfs unavailable under %s%s: %w", root, why, err)
	}
	werr := os.WriteFile(filepath.Join(target, "probe"), []byte("x"), 0o644)
	if err := mount.UnmountAll(target, 0); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("overlayfs unavailable under %s: writing through a test mount: %w", root, werr)
	}
	return opts, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func paramOn(name string) bool {
	b, err := os.ReadFile("/sys/module/overlay/parameters/" + name)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

func filesystemKnown(fs string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

// inUserNS reports whether the process runs in a user namespace other than
// the initial one, where overlayfs needs userxattr.
func inUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// Prepare creates an active snapshot; see snapshots.Snapshotter.
func (o *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return o.create(ctx, snapshots.KindActive, key, parent, opts)
}

// View creates a read-only snapshot; see snapshots.Snapshotter.
func (o *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return o.create(ctx, snapshots.KindView, key, parent, opts)
}

func (o *Snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	s, err := o.Dirs.Create(ctx, kind, key, parent, opts, func(dir string, _ []string) error {
		if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
			return err
		}
		if kind == snapshots.KindActive {
			return os.Mkdir(filepath.Join(dir, "work"), 0o700)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o.mounts(s), nil
}

// Mounts returns the mounts of an active snapshot or view.
func (o *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	s, err := o.Mountable(ctx, key)
	if err != nil {
		return nil, err
	}
	return o.mounts(s), nil
}

func (o *Snapshotter) mounts(s storage.Snapshot) []mount.Mount {
	mode := "rw"
	if s.Kind != snapshots.KindActive {
		mode = "ro"
	}
	switch {
	case len(s.ParentIDs) == 0:
		return []mount.Mount{{Type: "bind", Source: o.FS(s.ID), Options: []string{mode, "rbind"}}}
	case s.Kind != snapshots.KindActive && len(s.ParentIDs) == 1:
		return []mount.Mount{{Type: "bind", Source: o.FS(s.ParentIDs[0]), Options: []string{"ro", "rbind"}}}
	}
	lowers := make([]string, len(s.ParentIDs))
	for i, id := range s.ParentIDs {
		lowers[i] = o.FS(id)
	}
	options := append([]string(nil), o.options...)
	if s.Kind == snapshots.KindActive {
		options = append(options, "workdir="+filepath.Join(o.Dirs.Path(s.ID), "work"), "upperdir="+o.FS(s.ID))
	} else {
		options = append(options, "ro")
	}
	options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: options}}
}
