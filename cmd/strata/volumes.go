package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/volumes"
)

// Volumes and networks are files under the store root with their own file
// locks (volumes/, network/), not records of the metadata database: the
// CLI opens them itself in both modes, as podman does, rather than through
// a daemon service. Through the daemon that takes root (the files are the
// daemon's, mode 0700), which making bridges and namespaces needs anyway;
// the container records that say which volumes are in use still come
// through the backend, so the daemon's view of them is the one consulted.

// hostFilesRoot returns the root the volume and network files live under:
// the daemon's root through the daemon (which only root may act on), this
// store's in embedded mode.
func hostFilesRoot(s backend, what string) (string, error) {
	root := s.Info().Root
	if s.Address() != "" && os.Geteuid() != 0 {
		return "", fmt.Errorf("%s: the daemon's %s under %s are root's: run as root: %w", what, what, root, errdefs.ErrPermissionDenied)
	}
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return "", err
		}
		root = abs
	}
	return root, nil
}

// openVolumes opens the volume store of the backend's root, with the
// container records of every namespace telling which volumes are in use.
func openVolumes(s backend) (*volumes.Store, error) {
	root, err := hostFilesRoot(s, "volumes")
	if err != nil {
		return nil, err
	}
	var vs *volumes.Store
	vs, err = volumes.New(filepath.Join(root, "volumes"), volumes.WithInUse(func(ctx context.Context) (map[string][]string, error) {
		return volumesInUse(ctx, s, vs)
	}))
	return vs, err
}

// volumesInUse finds the volumes bound by the specs of the containers of
// every namespace.
func volumesInUse(ctx context.Context, s backend, vs *volumes.Store) (map[string][]string, error) {
	nss, err := s.Namespaces().List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string][]string{}
	for _, ns := range nss {
		cs, err := s.Containers().List(namespaces.WithNamespace(ctx, ns))
		if err != nil {
			return nil, fmt.Errorf("containers of namespace %s: %w", ns, err)
		}
		for _, c := range cs {
			if c.Spec == nil {
				continue
			}
			var spec specs.Spec
			if err := json.Unmarshal(c.Spec.GetValue(), &spec); err != nil {
				// Not a runtime spec JSON (another client's type):
				// strata's volumes are not in it.
				continue
			}
			for _, name := range vs.Names(spec.Mounts) {
				used[name] = append(used[name], c.ID)
			}
		}
	}
	return used, nil
}

type volumeJSON struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  string            `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"`
	Anonymous  bool              `json:"Anonymous,omitempty"`
	// UsedBy lists the containers naming the volume (inspect only).
	UsedBy []string `json:"UsedBy,omitempty"`
}

func volumeRow(v volumes.Volume) volumeJSON {
	labels := v.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return volumeJSON{Name: v.Name, Driver: "local", Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt.Format("2006-01-02T15:04:05Z07:00"),
		Labels: labels, Scope: "local", Anonymous: v.Anonymous}
}

// withVolumes runs fn over the volume store of the command's root.
func (a *app) withVolumes(cmd *cobra.Command, fn func(ctx context.Context, vs *volumes.Store) error) error {
	return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
		vs, err := openVolumes(s)
		if err != nil {
			return err
		}
		return fn(ctx, vs)
	})
}

func volumeCreate(a *app) *cobra.Command {
	var (
		labels []string
		driver string
	)
	cmd := &cobra.Command{
		Use:   "create [--label KEY=VALUE...] [NAME]",
		Short: "Create a named volume (a random name when none is given) and print its name",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%q takes at most one name, got %d", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if driver != "local" {
				return usagef("--driver %q: only the local driver exists", driver)
			}
			req := volumes.CreateRequest{Labels: lbls}
			if len(args) == 1 {
				if err := volumes.ValidName(args[0]); err != nil {
					return usageError{err}
				}
				req.Name = args[0]
			}
			return a.withVolumes(cmd, func(ctx context.Context, vs *volumes.Store) error {
				v, err := vs.Create(ctx, req)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(cmd.OutOrStdout(), volumeRow(v))
				}
				fmt.Fprintln(cmd.OutOrStdout(), v.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeatable)")
	cmd.Flags().StringVarP(&driver, "driver", "d", "local", "volume driver (only local)")
	return cmd
}

func volumeList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, vs *volumes.Store) error {
				list, err := vs.List(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					rows := make([]volumeJSON, 0, len(list))
					for _, v := range list {
						rows = append(rows, volumeRow(v))
					}
					return printJSON(out, rows)
				}
				if quiet {
					for _, v := range list {
						fmt.Fprintln(out, v.Name)
					}
					return nil
				}
				t := newTable(out, "DRIVER", "VOLUME NAME")
				for _, v := range list {
					t.row("local", v.Name)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print names only")
	return cmd
}

func volumeInspect(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show volumes as JSON, with the containers using them",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, vs *volumes.Store) error {
				used, err := vs.InUse(ctx)
				if err != nil {
					return err
				}
				rows := make([]volumeJSON, 0, len(args))
				for _, name := range args {
					v, err := vs.Get(ctx, name)
					if err != nil {
						return err
					}
					row := volumeRow(v)
					row.UsedBy = used[name]
					rows = append(rows, row)
				}
				return printJSON(cmd.OutOrStdout(), rows)
			})
		},
	}
}

func volumeRemove(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes and their data (not while a container uses them)",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withVolumes(cmd, func(ctx context.Context, vs *volumes.Store) error {
				return eachArg(cmd, args, "volumes not removed", func(name string) error {
					return vs.Remove(ctx, name)
				})
			})
		},
	}
}

func volumePrune(a *app) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [--all]",
		Short: "Remove the anonymous volumes no container uses (all unused ones with --all)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = force // docker asks for confirmation without it; strata never asks
			return a.withVolumes(cmd, func(ctx context.Context, vs *volumes.Store) error {
				removed, err := vs.Prune(ctx, volumes.PruneOptions{All: all})
				for _, name := range removed {
					fmt.Fprintln(cmd.OutOrStdout(), name)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every unused volume, named ones too")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "accepted for docker's scripts; strata does not ask")
	return cmd
}
