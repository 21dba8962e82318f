package main

import (
	"context"

	"fmt"
	"io"
	"sort"
	"strings"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/server"
)

// pluginRow is a part of strata as `plugins ls` prints it: containerd's
// plugin model, which is what `ctr plugins ls` shows of the daemon.
type pluginRow struct {
	Type         string            `json:"type"`
	ID           string            `json:"id"`
	Requires     []string          `json:"requires,omitempty"`
	Platforms    []string          `json:"platforms,omitempty"`
	Exports      map[string]string `json:"exports,omitempty"`
	Capabilities []string          `json:"capabilities,omitempty"`
	// Status is "ok", or "error" when the part failed to start (Error says
	// why), as in ctr.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// fields lets filters (type, id, capabilities.NAME, exports.KEY) match a
// row, with the field names of the introspection service.
func (r pluginRow) fields() filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "type":
			return r.Type, true
		case "id":
			return r.ID, true
		case "status":
			return r.Status, true
		case "capabilities":
			for _, c := range r.Capabilities {
				if len(fieldpath) > 1 && c == fieldpath[1] {
					return c, true
				}
			}
		case "exports":
			return filters.LabelField(r.Exports, fieldpath[1:])
		}
		return "", false
	})
}

// pluginRows lists the parts of the server strata would serve over s's
// store, without serving it: the services register on a server that never
// listens, so no socket is needed.
func pluginRows(srv *server.Server) []pluginRow {
	host := images.FormatPlatform(images.DefaultPlatform())
	var rows []pluginRow
	for _, p := range srv.Plugins() {
		r := pluginRow{Type: p.Type, ID: p.ID, Requires: p.Requires, Exports: p.Exports, Capabilities: p.Capabilities, Status: "ok"}
		// The introspection service gives snapshotters and differs the
		// host's platform, and nothing else one; so do we.
		if p.Type == "io.containerd.snapshotter.v1" || p.Type == "io.containerd.differ.v1" {
			r.Platforms = []string{host}
		}
		if p.InitErr != nil {
			r.Status, r.Error = "error", p.InitErr.Error()
		}
		rows = append(rows, r)
	}
	return rows
}

// listPlugins asks the daemon's introspection service, or lists what
// stratad would serve over an embedded store.
func listPlugins(ctx context.Context, a *app, s backend) ([]pluginRow, error) {
	r, ok := s.(*remote)
	if !ok {
		srv, err := server.New(s.(*embedded).s, server.Config{Logger: a.logger})
		if err != nil {
			return nil, fmt.Errorf("list plugins of %s: %w", a.root, err)
		}
		// Never served: stopping only drops the registrations.
		defer srv.Stop(0)
		return pluginRows(srv), nil
	}
	resp, err := introspectionapi.NewIntrospectionClient(r.conn).Plugins(ctx, &introspectionapi.PluginsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list plugins of the daemon at %s: %w", r.address, errgrpc.ToNative(err))
	}
	var rows []pluginRow
	for _, p := range resp.Plugins {
		row := pluginRow{Type: p.Type, ID: p.ID, Requires: p.Requires, Exports: p.Exports, Capabilities: p.Capabilities, Status: "ok"}
		for _, pl := range p.Platforms {
			row.Platforms = append(row.Platforms, images.FormatPlatform(ocispec.Platform{OS: pl.OS, Architecture: pl.Architecture, Variant: pl.Variant}))
		}
		if p.InitErr != nil {
			row.Status, row.Error = "error", p.InitErr.Message
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func pluginsList(a *app) *cobra.Command {
	var quiet, detailed bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List plugins: type, ID, platforms and status (filters as in ctr: type==io.containerd.snapshotter.v1)",
		Long: `List the parts of strata in containerd's plugin model: the content store,
the snapshotters (overlayfs is listed with status error, and the reason, when
it does not work under the root), the differ, the metadata database and the
gRPC services stratad serves. Filters use containerd's syntax over the fields
type, id, status, capabilities.NAME and exports.KEY; a plugin is listed when
any filter matches.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := filters.ParseAll(args...)
			if err != nil {
				return err
			}
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				all, err := listPlugins(cmd.Context(), a, s)
				if err != nil {
					return err
				}
				rows := []pluginRow{}
				for _, r := range all {
					if filter.Match(r.fields()) {
						rows = append(rows, r)
					}
				}
				out := cmd.OutOrStdout()
				switch {
				case a.output == "json":
					return printJSON(out, rows)
				case quiet:
					for _, r := range rows {
						fmt.Fprintln(out, r.ID)
					}
					return nil
				case detailed:
					for i, r := range rows {
						if i > 0 {
							fmt.Fprintln(out)
						}
						printPluginDetail(out, r)
					}
					return nil
				}
				t := newTable(out, "TYPE", "ID", "PLATFORMS", "STATUS")
				for _, r := range rows {
					platforms := "-"
					if len(r.Platforms) > 0 {
						platforms = strings.Join(r.Platforms, ",")
					}
					t.row(r.Type, r.ID, platforms, r.Status)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only plugin IDs")
	cmd.Flags().BoolVarP(&detailed, "detailed", "d", false, "print requirements, exports, capabilities and errors")
	return cmd
}

// printPluginDetail prints one plugin as ctr plugins ls -d does.
func printPluginDetail(w io.Writer, r pluginRow) {
	t := newTable(w)
	t.row("Type:", r.Type)
	t.row("ID:", r.ID)
	if len(r.Requires) > 0 {
		t.row("Requires:", strings.Join(r.Requires, ", "))
	}
	if len(r.Platforms) > 0 {
		t.row("Platforms:", strings.Join(r.Platforms, ", "))
	}
	if len(r.Capabilities) > 0 {
		t.row("Capabilities:", strings.Join(r.Capabilities, ", "))
	}
	if len(r.Exports) > 0 {
		keys := make([]string, 0, len(r.Exports))
		for k := range r.Exports {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.row("Exports:", "")
		for _, k := range keys {
			t.row("", k+"  "+r.Exports[k])
		}
	}
	t.row("Status:", r.Status)
	if r.Error != "" {
		t.row("Error:", r.Error)
	}
	t.flush()
}
