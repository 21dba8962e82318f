package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/wiring"
)

// snapshotterNames are the snapshotters a store can have (decided in
// wiring); which of them work depends on the filesystem under
// the root.
var snapshotterNames = wiring.SnapshotterKinds

// snapshotterFlag is the --snapshotter flag of the snapshots and layer
// commands.
type snapshotterFlag struct{ name string }

func (f *snapshotterFlag) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.name, "snapshotter", "",
		"snapshotter: "+strings.Join(snapshotterNames, " or ")+" (default: the store's, overlayfs where it works)")
}

// check fails with a usage error when the flag names no snapshotter a
// store can have.
func (f *snapshotterFlag) check() error {
	if f.name != "" && !contains(snapshotterNames, f.name) {
		return usagef("--snapshotter %q: want %s", f.name, strings.Join(snapshotterNames, " or "))
	}
	return nil
}

// snapshotter returns the snapshotter of s the flag names (the store's
// default when it names none), and its name; errdefs.ErrUnavailable when
// s has none by that name.
func (f *snapshotterFlag) snapshotter(s backend) (snapshots.Snapshotter, string, error) {
	name := f.name
	if name == "" {
		name = s.Info().DefaultSnapshotter
	}
	sn := s.Snapshotter(name)
	if sn == nil {
		if why := s.Info().OverlayUnavailable; name == "overlayfs" && why != "" {
			return nil, "", fmt.Errorf("snapshotter overlayfs: %s: %w", why, errdefs.ErrUnavailable)
		}
		return nil, "", fmt.Errorf("snapshotter %s: %w", name, errdefs.ErrUnavailable)
	}
	return sn, name, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// snapshotsLong is the help of strata snapshots.
const snapshotsLong = `Snapshots are copy-on-write directory trees, kept per namespace, as in
containerd. An active snapshot (prepare) is writable and is committed under a
name (commit), which later snapshots use as their parent; a view is a
read-only look at a committed snapshot. strata prints how to mount them
(mounts); mounting is left to you.

Snapshots made here get the label containerd.io/gc.root, as with ctr, so
that garbage collection keeps them until you remove them.`

// snapshotRow is a snapshot as -o json prints it.
type snapshotRow struct {
	Name      string            `json:"name"`
	Parent    string            `json:"parent,omitempty"`
	Kind      string            `json:"kind"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func snapshotJSON(info snapshots.Info) snapshotRow {
	return snapshotRow{info.Name, info.Parent, info.Kind.String(), info.Labels, info.Created, info.Updated}
}

// mountRow is a mount as -o json prints it.
type mountRow struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// printMounts prints mounts as mount(8) commands on target, one a line, or
// as JSON with -o json.
func printMounts(a *app, w io.Writer, target string, mounts []mount.Mount) error {
	if a.output == "json" {
		rows := []mountRow{}
		for _, m := range mounts {
			rows = append(rows, mountRow{m.Type, m.Source, m.Options})
		}
		return printJSON(w, rows)
	}
	for _, m := range mounts {
		fmt.Fprintln(w, m.Command(target))
	}
	return nil
}

// walkAll returns the snapshots matching filters, sorted by name.
func walkAll(ctx context.Context, sn snapshots.Snapshotter, filters ...string) ([]snapshots.Info, error) {
	var infos []snapshots.Info
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		infos = append(infos, info)
		return nil
	}, filters...)
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, err
}

func snapshotsList(a *app, sf *snapshotterFlag) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List snapshots, optionally filtered (kind, name, parent, labels.KEY)",
		Example: `  strata snapshots ls
  strata snapshots ls kind==active
  strata snapshots --snapshotter native ls parent==base`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				infos, err := walkAll(ctx, sn, args...)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				switch {
				case a.output == "json":
					rows := []snapshotRow{}
					for _, info := range infos {
						rows = append(rows, snapshotJSON(info))
					}
					return printJSON(out, rows)
				case quiet:
					for _, info := range infos {
						fmt.Fprintln(out, info.Name)
					}
					return nil
				}
				t := newTable(out, "KEY", "PARENT", "KIND", "LABELS")
				for _, info := range infos {
					parent := info.Parent
					if parent == "" {
						parent = "-"
					}
					t.row(info.Name, parent, info.Kind.String(), labelString(info.Labels))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only keys")
	return cmd
}

// treeNode is a snapshot in the tree its parents make.
type treeNode struct {
	Name     string      `json:"name"`
	Kind     string      `json:"kind"`
	Children []*treeNode `json:"children,omitempty"`
}

// snapshotTree arranges infos (sorted by name) under their parents and
// returns the roots: the snapshots without a parent, and any whose parent
// is not among infos.
func snapshotTree(infos []snapshots.Info) []*treeNode {
	nodes := make(map[string]*treeNode, len(infos))
	for _, info := range infos {
		nodes[info.Name] = &treeNode{Name: info.Name, Kind: info.Kind.String()}
	}
	roots := []*treeNode{}
	for _, info := range infos {
		if p, ok := nodes[info.Parent]; ok && info.Parent != "" {
			p.Children = append(p.Children, nodes[info.Name])
			continue
		}
		roots = append(roots, nodes[info.Name])
	}
	return roots
}

// printTree draws the tree as tree(1) does:
//
//	base
//	├── app
//	│   └── app-run (active)
//	└── inspect (view)
func printTree(w io.Writer, nodes []*treeNode, indent string, top bool) {
	for i, n := range nodes {
		label := n.Name
		if n.Kind != snapshots.KindCommitted.String() {
			label += " (" + n.Kind + ")"
		}
		last := i == len(nodes)-1
		switch {
		case top:
			fmt.Fprintln(w, label)
			printTree(w, n.Children, "", false)
		case last:
			fmt.Fprintln(w, indent+"└── "+label)
			printTree(w, n.Children, indent+"    ", false)
		default:
			fmt.Fprintln(w, indent+"├── "+label)
			printTree(w, n.Children, indent+"│   ", false)
		}
	}
}

func snapshotsTree(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "tree",
		Short: "Show snapshots as the tree their parents make; active ones and views are marked",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				infos, err := walkAll(ctx, sn)
				if err != nil {
					return err
				}
				roots := snapshotTree(infos)
				if a.output == "json" {
					return printJSON(cmd.OutOrStdout(), roots)
				}
				printTree(cmd.OutOrStdout(), roots, "", true)
				return nil
			})
		},
	}
}

func snapshotsInfo(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "info KEY",
		Short: "Print a snapshot's kind, parent, labels and times as JSON",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				info, err := sn.Stat(ctx, args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), snapshotJSON(info))
			})
		},
	}
}

func snapshotsUsage(a *app, sf *snapshotterFlag) *cobra.Command {
	var bytes bool
	cmd := &cobra.Command{
		Use:   "usage [KEY...]",
		Short: "Show the disk space snapshots take themselves, without their parents (all when no KEY)",
		Long: `Shows the bytes of the regular files in each snapshot's own layer and the
number of inodes it uses. For an active snapshot it is measured now, which
takes a while on a large tree.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				keys := args
				if len(keys) == 0 {
					infos, err := walkAll(ctx, sn)
					if err != nil {
						return err
					}
					for _, info := range infos {
						keys = append(keys, info.Name)
					}
				}
				type row struct {
					Name   string `json:"name"`
					Size   int64  `json:"size"`
					Inodes int64  `json:"inodes"`
				}
				rows := []row{}
				failed := 0
				for _, key := range keys {
					u, err := sn.Usage(ctx, key)
					if err != nil {
						if !errors.Is(err, errdefs.ErrNotFound) {
							err = fmt.Errorf("usage of snapshot %q: %w", key, err)
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "strata: %v\n", err)
						failed++
						continue
					}
					rows = append(rows, row{key, u.Size, u.Inodes})
				}
				out := cmd.OutOrStdout()
				var err error
				if a.output == "json" {
					err = printJSON(out, rows)
				} else {
					t := newTable(out, "KEY", "SIZE", "INODES")
					for _, r := range rows {
						size := humanSize(r.Size)
						if bytes {
							size = fmt.Sprint(r.Size)
						}
						t.row(r.Name, size, fmt.Sprint(r.Inodes))
					}
					err = t.flush()
				}
				if err == nil && failed > 0 {
					err = fmt.Errorf("%d of %d snapshots not measured", failed, len(keys))
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&bytes, "bytes", "b", false, "show sizes in bytes")
	return cmd
}

// createFlags are the flags of prepare and view.
type createFlags struct {
	target string
	labels []string
}

func (f *createFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.target, "target", "t", "", "print the command that mounts the snapshot on this directory")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE for the snapshot (repeatable)")
}

// gcRootLabels parses KEY=VALUE arguments and adds the gc.root label. It
// keeps what the CLI creates from garbage collection, as ctr does: a
// snapshot no image, lease or label holds is collected by the next
// collection, which any rm schedules.
func gcRootLabels(args []string) (snapshots.Opt, error) {
	lbls, err := parseLabels(args)
	if err != nil {
		return nil, err
	}
	if _, ok := lbls[labels.GCRoot]; !ok {
		lbls[labels.GCRoot] = time.Now().UTC().Format(time.RFC3339)
	}
	return snapshots.WithLabels(lbls), nil
}

// create runs Prepare or View and prints the mounts when asked.
func (f *createFlags) create(a *app, sf *snapshotterFlag, cmd *cobra.Command, key, parent string, kind snapshots.Kind) error {
	opt, err := gcRootLabels(f.labels)
	if err != nil {
		return err
	}
	return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
		if parent != "" {
			// Checked here so that the error names the parent as the user
			// does; the backends name it by their internal key.
			info, err := sn.Stat(ctx, parent)
			if errors.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("parent %q of snapshot %q: %w", parent, key, errdefs.ErrNotFound)
			}
			if err != nil {
				return err
			}
			if info.Kind != snapshots.KindCommitted {
				return fmt.Errorf("parent %q of snapshot %q is %s, not committed; commit it first: %w", parent, key, info.Kind, errdefs.ErrFailedPrecondition)
			}
		}
		var (
			mounts []mount.Mount
			err    error
		)
		if kind == snapshots.KindView {
			mounts, err = sn.View(ctx, key, parent, opt)
		} else {
			mounts, err = sn.Prepare(ctx, key, parent, opt)
		}
		if err != nil {
			return err
		}
		if f.target != "" || a.output == "json" {
			return printMounts(a, cmd.OutOrStdout(), f.target, mounts)
		}
		return nil
	})
}

func snapshotsPrepare(a *app, sf *snapshotterFlag) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "prepare KEY [PARENT]",
		Short: "Create an active (writable) snapshot KEY on the committed snapshot PARENT, or empty",
		Long: `Creates the active snapshot KEY on top of the committed snapshot PARENT (an
empty one without PARENT). It prints nothing, or with --target DIR the
command that mounts it on DIR, or with -o json its mounts.`,
		Example: `  strata snapshots prepare base
  strata layer apply base layer.tar.gz
  strata snapshots commit sha256:... base
  strata snapshots prepare --target /mnt/rootfs run-1 sha256:...`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%q takes 1 or 2 arguments (KEY [PARENT]), got %d; see %q", cmd.CommandPath(), len(args), cmd.CommandPath()+" --help")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			parent := ""
			if len(args) == 2 {
				parent = args[1]
			}
			return f.create(a, sf, cmd, args[0], parent, snapshots.KindActive)
		},
	}
	f.register(cmd)
	return cmd
}

func snapshotsView(a *app, sf *snapshotterFlag) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "view KEY PARENT",
		Short: "Create a read-only snapshot KEY of the committed snapshot PARENT",
		Long: `Creates the view KEY, a read-only look at the committed snapshot PARENT.
It prints nothing, or with --target DIR the command that mounts it on DIR,
or with -o json its mounts. Remove it with strata snapshots rm KEY.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.create(a, sf, cmd, args[0], args[1], snapshots.KindView)
		},
	}
	f.register(cmd)
	return cmd
}

func snapshotsCommit(a *app, sf *snapshotterFlag) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "commit NAME KEY",
		Short: "Commit the active snapshot KEY as NAME (unmount it first); KEY is gone afterwards",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := gcRootLabels(labels)
			if err != nil {
				return err
			}
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				return sn.Commit(ctx, args[0], args[1], opt)
			})
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE for the committed snapshot (repeatable)")
	return cmd
}

func snapshotsMounts(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:     "mounts TARGET KEY",
		Aliases: []string{"mount", "m"},
		Short:   "Print the commands that mount the active snapshot or view KEY on TARGET",
		Example: `  sh -c "$(strata snapshots mounts /mnt/rootfs run-1)"`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, key := args[0], args[1]
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				// The backends' own refusal names their internal key, not
				// the user's; check the kind here.
				info, err := sn.Stat(ctx, key)
				if err != nil {
					return err
				}
				if info.Kind == snapshots.KindCommitted {
					return fmt.Errorf("mounts of snapshot %q: it is committed; mount a view of it (strata snapshots view VIEW-KEY %s): %w", key, key, errdefs.ErrFailedPrecondition)
				}
				mounts, err := sn.Mounts(ctx, key)
				if err != nil {
					return err
				}
				return printMounts(a, cmd.OutOrStdout(), target, mounts)
			})
		},
	}
}

func snapshotsRemove(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:     "rm KEY...",
		Aliases: []string{"remove", "delete", "del"},
		Short:   "Remove snapshots, children first; their space is freed when the command ends",
		Long: `Removes the snapshots from the namespace, children before their parents.
Unmount them first. Their files are deleted by the garbage collection that
runs as the command ends, once no namespace refers to them.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				return eachArg(cmd, args, "snapshots not removed", func(key string) error {
					err := sn.Remove(ctx, key)
					if errors.Is(err, errdefs.ErrFailedPrecondition) {
						return fmt.Errorf("%w; remove its children first (strata snapshots tree)", err)
					}
					return err
				})
			})
		},
	}
}

func snapshotsLabel(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "label KEY KEY=VALUE...",
		Short: "Set labels on a snapshot (KEY= removes one) and print its labels",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				info := snapshots.Info{Name: args[0], Labels: labels}
				var paths []string
				for k := range labels {
					paths = append(paths, "labels."+k)
				}
				info, err := sn.Update(ctx, info, paths...)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(cmd.OutOrStdout(), snapshotJSON(info))
				}
				fmt.Fprintln(cmd.OutOrStdout(), labelString(info.Labels))
				return nil
			})
		},
	}
}
