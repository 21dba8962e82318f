package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/internal/wiring"
	"github.com/strata-oci/strata/server/servertest"
)

// pluginLines returns the rows of a TYPE ID PLATFORMS STATUS table, each
// with its columns joined by one space.
func pluginLines(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "TYPE ID PLATFORMS STATUS" {
		t.Fatalf("plugins table has no TYPE ID PLATFORMS STATUS header:\n%s", out)
	}
	var rows []string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	return rows
}

func TestPluginsList(t *testing.T) {
	c := newCLI(t)
	// Embedded mode: no daemon, and the command serves nothing either.
	out := c.ok("plugins", "ls")
	var sockets []string
	filepath.WalkDir(c.root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSocket != 0 {
			sockets = append(sockets, path)
		}
		return nil
	})
	if len(sockets) > 0 {
		t.Fatalf("plugins ls left sockets under the root: %v", sockets)
	}

	// Whether overlayfs works under this root decides its status.
	var overlayErr error
	withStore(t, c, func(_ context.Context, s *wiring.Store) { overlayErr = s.OverlayUnavailable })
	overlayStatus := "ok"
	if overlayErr != nil {
		overlayStatus = "error"
	}

	host := images.FormatPlatform(images.DefaultPlatform())
	rows := pluginLines(t, out)
	have := map[string]bool{}
	for _, r := range rows {
		have[r] = true
	}
	for _, want := range []string{
		"io.containerd.content.v1 content - ok",
		"io.containerd.grpc.v1 content - ok",
		"io.containerd.snapshotter.v1 native " + host + " ok",
		"io.containerd.snapshotter.v1 overlayfs " + host + " " + overlayStatus,
		"io.containerd.grpc.v1 snapshots - ok",
		"io.containerd.differ.v1 walking " + host + " ok",
		"io.containerd.grpc.v1 diff - ok",
		"io.containerd.grpc.v1 images - ok",
		"io.containerd.grpc.v1 containers - ok",
		"io.containerd.service.v1 containers-service - ok",
		"io.containerd.grpc.v1 leases - ok",
		"io.containerd.grpc.v1 namespaces - ok",
		"io.containerd.grpc.v1 version - ok",
		"io.containerd.grpc.v1 introspection - ok",
	} {
		if !have[want] {
			t.Errorf("plugins ls has no row %q:\n%s", want, out)
		}
	}

	// The same rows as the real ctr shows of a daemon.
	d := servertest.Start(t)
	ctrRows := pluginLines(t, d.Ctr(t, "default", "plugins", "ls"))
	if strings.Join(rows, "\n") != strings.Join(ctrRows, "\n") {
		t.Errorf("strata plugins ls:\n%s\nctr plugins ls against stratad:\n%s", strings.Join(rows, "\n"), strings.Join(ctrRows, "\n"))
	}

	// -q: one ID a line, in the table's order.
	var ids []string
	for _, r := range rows {
		ids = append(ids, strings.Fields(r)[1])
	}
	if got := c.ok("plugins", "ls", "-q"); got != strings.Join(ids, "\n")+"\n" {
		t.Errorf("plugins ls -q = %q, want %q", got, ids)
	}

	// -o json, with a filter.
	var js []struct {
		Type      string            `json:"type"`
		ID        string            `json:"id"`
		Platforms []string          `json:"platforms"`
		Exports   map[string]string `json:"exports"`
		Status    string            `json:"status"`
		Error     string            `json:"error"`
	}
	if err := json.Unmarshal([]byte(c.ok("-o", "json", "plugin", "list", "type==io.containerd.snapshotter.v1")), &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != 2 || js[0].ID != "native" || js[1].ID != "overlayfs" {
		t.Fatalf("plugins ls -o json type==io.containerd.snapshotter.v1 = %+v, want native and overlayfs", js)
	}
	if js[0].Status != "ok" || js[0].Exports["root"] != filepath.Join(c.root, "snapshots", "native") || len(js[0].Platforms) != 1 {
		t.Errorf("native plugin = %+v, want ok, exporting its root", js[0])
	}
	if ov := js[1]; overlayErr != nil {
		if ov.Status != "error" || ov.Error != overlayErr.Error() {
			t.Errorf("overlayfs plugin = %+v, want error %q", ov, overlayErr)
		}
	} else if ov.Status != "ok" || ov.Error != "" || ov.Exports["root"] != filepath.Join(c.root, "snapshots", "overlayfs") {
		t.Errorf("overlayfs plugin = %+v, want ok, exporting its root", ov)
	}

	// -d prints the details ctr prints.
	if out := c.ok("plugins", "ls", "-d", "id==native"); !strings.Contains(out, "Type:") || !strings.Contains(out, filepath.Join(c.root, "snapshots", "native")) {
		t.Errorf("plugins ls -d id==native = %q, want its type and root", out)
	}
	if out := c.ok("plugins", "ls", "-q", "id==nothing"); out != "" {
		t.Errorf("plugins ls -q id==nothing = %q, want nothing", out)
	}
	c.fails(2, "filters: parse", "plugins", "ls", "id==")
	c.fails(2, "needs a subcommand", "plugins")
}
