package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
)

func newContainersCommand(a *app) *cobra.Command {
	return groupCommand("containers", []string{"container", "c"}, "List, inspect and remove containers (created by ctr, nerdctl, BuildKit or the CRI)",
		containersList(a), containersInfo(a), containersRemove(a))
}

// taskChecker is what a backend that runs tasks implements (the tasks
// service, with the runtime): containers rm asks it first, so that a
// container is never removed from under its running task. A backend
// without it has no tasks.
type taskChecker interface {
	// TaskRunning reports whether the container id has a task that has
	// not exited.
	TaskRunning(ctx context.Context, id string) (bool, error)
}

// containerJSON is a container as info and ls -o json print it: the spec
// (and other payloads) as JSON when they are, as containerd's ctr shows.
type containerJSON struct {
	ID          string                     `json:"id"`
	Labels      map[string]string          `json:"labels,omitempty"`
	Image       string                     `json:"image,omitempty"`
	Runtime     runtimeJSON                `json:"runtime"`
	Spec        json.RawMessage            `json:"spec,omitempty"`
	Snapshotter string                     `json:"snapshotter,omitempty"`
	SnapshotKey string                     `json:"snapshot_key,omitempty"`
	SandboxID   string                     `json:"sandbox_id,omitempty"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
	CreatedAt   time.Time                  `json:"created_at"`
	UpdatedAt   time.Time                  `json:"updated_at"`
}

type runtimeJSON struct {
	Name    string          `json:"name"`
	Options json.RawMessage `json:"options,omitempty"`
}

// anyJSON shows an Any: its value itself when it is JSON (the OCI spec
// is), protobuf's JSON form when its type is known here, else its type
// and bytes.
func anyJSON(a *anypb.Any) json.RawMessage {
	if a == nil {
		return nil
	}
	if json.Valid(a.Value) && len(a.Value) > 0 {
		return json.RawMessage(a.Value)
	}
	if b, err := protojson.Marshal(a); err == nil {
		return b
	}
	b, _ := json.Marshal(struct {
		TypeURL string `json:"type_url"`
		Value   []byte `json:"value"`
	}{a.TypeUrl, a.Value})
	return b
}

func containerRow(c containers.Container) containerJSON {
	out := containerJSON{
		ID: c.ID, Labels: c.Labels, Image: c.Image,
		Runtime:     runtimeJSON{Name: c.Runtime.Name, Options: anyJSON(c.Runtime.Options)},
		Spec:        anyJSON(c.Spec),
		Snapshotter: c.Snapshotter, SnapshotKey: c.SnapshotKey, SandboxID: c.SandboxID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	for k, v := range c.Extensions {
		if out.Extensions == nil {
			out.Extensions = map[string]json.RawMessage{}
		}
		out.Extensions[k] = anyJSON(v)
	}
	return out
}

func containersList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List containers (filters: id, image, runtime.name, snapshotter, labels.KEY)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			cs, err := s.Containers().List(ctx, args...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case a.output == "json":
				rows := []containerJSON{}
				for _, c := range cs {
					rows = append(rows, containerRow(c))
				}
				return printJSON(out, rows)
			case quiet:
				for _, c := range cs {
					fmt.Fprintln(out, c.ID)
				}
				return nil
			}
			t := newTable(out, "CONTAINER", "IMAGE", "RUNTIME")
			for _, c := range cs {
				image := c.Image
				if image == "" {
					image = "-"
				}
				t.row(c.ID, image, c.Runtime.Name)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	return cmd
}

func containersInfo(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info ID",
		Short: "Print a container as JSON: image, runtime, OCI spec, snapshot, labels",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			c, err := s.Containers().Get(ctx, args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), containerRow(c))
		},
	}
}

func containersRemove(a *app) *cobra.Command {
	var keepSnapshot bool
	cmd := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove containers and their root filesystem snapshots (refused while a container's task runs)",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			return eachArg(cmd, args, "containers not removed", func(id string) error {
				c, err := s.Containers().Get(ctx, id)
				if err != nil {
					return err
				}
				if tc, ok := s.(taskChecker); ok {
					running, err := tc.TaskRunning(ctx, id)
					if err != nil {
						return fmt.Errorf("container %q: its task: %w", id, err)
					}
					if running {
						return fmt.Errorf("container %q: its task is running: kill it first: %w", id, errdefs.ErrFailedPrecondition)
					}
				}
				if err := s.Containers().Delete(ctx, id); err != nil {
					return err
				}
				if keepSnapshot || c.SnapshotKey == "" {
					return nil
				}
				// As ctr does; what is left (a snapshotter this strata
				// lacks) goes with garbage collection.
				if sn := s.Snapshotter(c.Snapshotter); sn != nil {
					if err := sn.Remove(ctx, c.SnapshotKey); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
						return fmt.Errorf("container %q removed; its snapshot %s/%s: %w", id, c.Snapshotter, c.SnapshotKey, err)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&keepSnapshot, "keep-snapshot", false, "leave the container's snapshot to garbage collection")
	return cmd
}
