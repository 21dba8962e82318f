package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/internal/wiring"
)

// TestContainersCommands: containers made as ctr makes them (a record and
// an active snapshot) are listed, filtered, shown and removed with their
// snapshot; --keep-snapshot leaves it; errors name the container.
func TestContainersCommands(t *testing.T) {
	c := newCLI(t)
	spec := &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{"ociVersion":"1.2.0","root":{"path":"rootfs"}}`)}
	var snapshotter string
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		snapshotter = s.DefaultSnapshotter
		for _, key := range []string{"web-root", "db-root"} {
			if _, err := s.Snapshotter("").Prepare(ctx, key, ""); err != nil {
				t.Fatal(err)
			}
		}
		for _, ct := range []containers.Container{
			{ID: "web", Image: "docker.io/library/nginx:1", Labels: map[string]string{"tier": "front"}, Snapshotter: snapshotter, SnapshotKey: "web-root"},
			{ID: "db", Image: "docker.io/library/postgres:17", Snapshotter: snapshotter, SnapshotKey: "db-root"},
			{ID: "bare"},
		} {
			ct.Runtime = containers.RuntimeInfo{Name: "io.containerd.runc.v2"}
			ct.Spec = spec
			if _, err := s.DB.Containers().Create(ctx, ct); err != nil {
				t.Fatal(err)
			}
		}
	})

	ls := c.ok("containers", "ls")
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	want := []string{"CONTAINER IMAGE RUNTIME", "bare - io.containerd.runc.v2", "db docker.io/library/postgres:17 io.containerd.runc.v2", "web docker.io/library/nginx:1 io.containerd.runc.v2"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("containers ls:\n%s\nwant:\n%s", ls, strings.Join(want, "\n"))
	}
	if got := c.ok("c", "ls", "-q"); got != "bare\ndb\nweb\n" {
		t.Errorf("c ls -q = %q", got)
	}
	if got := c.ok("containers", "ls", "-q", "labels.tier==front", "image~=postgres"); got != "db\nweb\n" {
		t.Errorf("containers ls -q labels.tier==front image~=postgres = %q, want db, web", got)
	}
	c.fails(2, "", "containers", "ls", "id==")

	var info containerJSON
	if err := json.Unmarshal([]byte(c.ok("containers", "info", "web")), &info); err != nil {
		t.Fatal(err)
	}
	var gotSpec struct {
		OCIVersion string `json:"ociVersion"`
		Root       struct{ Path string }
	}
	if err := json.Unmarshal(info.Spec, &gotSpec); err != nil {
		t.Fatalf("containers info web: spec %s: %v", info.Spec, err)
	}
	if info.ID != "web" || info.Runtime.Name != "io.containerd.runc.v2" || info.Labels["tier"] != "front" || info.Snapshotter != snapshotter ||
		info.SnapshotKey != "web-root" || info.CreatedAt.IsZero() || gotSpec.OCIVersion != "1.2.0" || gotSpec.Root.Path != "rootfs" {
		t.Errorf("containers info web = %+v (spec %+v)", info, gotSpec)
	}
	c.fails(1, `container "nothere" in namespace "default": not found`, "containers", "info", "nothere")

	// rm goes on past a missing container, naming it, and removes the
	// snapshot of each one it removes, but with --keep-snapshot.
	r := c.run("containers", "rm", "web", "nothere", "bare")
	if r.code != 1 || r.stdout != "web\nbare\n" || !strings.Contains(r.stderr, `container "nothere"`) || !strings.Contains(r.stderr, "1 of 3 containers not removed") {
		t.Fatalf("containers rm web nothere bare = %+v", r)
	}
	if out := c.ok("containers", "rm", "--keep-snapshot", "db"); out != "db\n" {
		t.Fatalf("containers rm --keep-snapshot db = %q", out)
	}
	if got := c.ok("containers", "ls", "-q"); got != "" {
		t.Errorf("containers left: %q", got)
	}
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		if _, err := s.Snapshotter(snapshotter).Stat(ctx, "web-root"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("web's snapshot after containers rm web = %v, want not found", err)
		}
	})
	// db's snapshot is GC's: nothing holds it now.
	c.collected("db's snapshot, kept by rm, collected", func() error {
		var err error
		withStore(t, c, func(ctx context.Context, s *wiring.Store) {
			if _, serr := s.Snapshotter(snapshotter).Stat(ctx, "db-root"); !errors.Is(serr, errdefs.ErrNotFound) {
				err = errors.New("db-root still there")
			}
		})
		return err
	})
}
