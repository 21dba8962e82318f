package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/wiring"
)

// TestVolumeCommands: create, ls, inspect, rm and prune, a volume a
// container's spec binds refused removal, and bad names refused with
// nothing written.
func TestVolumeCommands(t *testing.T) {
	c := newCLI(t)
	if got := c.ok("volume", "create", "--label", "team=db", "data"); got != "data\n" {
		t.Fatalf("volume create data = %q", got)
	}
	anon := strings.TrimSpace(c.ok("volume", "create"))
	if len(anon) != 64 {
		t.Fatalf("volume create (anonymous) = %q, want a 64-digit name", anon)
	}
	c.ok("volume", "create", "spare")
	c.fails(1, `volume "data": already exists`, "volume", "create", "data")
	c.fails(2, `volume name "-x"`, "volume", "create", "--", "-x")
	c.fails(2, `volume name "a/b"`, "volume", "create", "a/b")

	rows := strings.Split(strings.TrimSpace(c.ok("volume", "ls")), "\n")
	if len(rows) != 4 || strings.Join(strings.Fields(rows[0]), " ") != "DRIVER VOLUME NAME" {
		t.Fatalf("volume ls:\n%s", strings.Join(rows, "\n"))
	}
	var vols []volumeJSON
	if err := json.Unmarshal([]byte(c.ok("volume", "inspect", "data")), &vols); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(c.root, "volumes", "data", "_data")
	if len(vols) != 1 || vols[0].Mountpoint != mp || vols[0].Labels["team"] != "db" || vols[0].Driver != "local" {
		t.Fatalf("volume inspect data = %+v", vols)
	}
	c.fails(1, `volume "nope": not found`, "volume", "inspect", "nope")
	if err := os.WriteFile(filepath.Join(mp, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A container record whose spec binds the volume holds it.
	spec := fmt.Sprintf(`{"ociVersion":"1.2.0","root":{"path":"rootfs"},"mounts":[{"destination":"/data","type":"bind","source":%q,"options":["rbind","rw"]}]}`, mp)
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		if _, err := s.DB.Containers().Create(ctx, containers.Container{ID: "db1", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
			Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(spec)}}); err != nil {
			t.Fatal(err)
		}
	})
	c.fails(1, `volume "data" is in use by container(s) db1`, "volume", "rm", "data")
	if err := json.Unmarshal([]byte(c.ok("volume", "inspect", "data")), &vols); err != nil {
		t.Fatal(err)
	}
	if len(vols[0].UsedBy) != 1 || vols[0].UsedBy[0] != "db1" {
		t.Errorf("volume inspect data: UsedBy = %v, want [db1]", vols[0].UsedBy)
	}
	// prune: anonymous only, then every unused one; data survives both.
	if got := c.ok("volume", "prune"); got != anon+"\n" {
		t.Errorf("volume prune = %q, want %s", got, anon)
	}
	if got := c.ok("volume", "prune", "--all"); got != "spare\n" {
		t.Errorf("volume prune --all = %q, want spare", got)
	}
	if _, err := os.Stat(filepath.Join(mp, "kept")); err != nil {
		t.Errorf("in-use volume's data: %v", err)
	}
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		if err := s.DB.Containers().Delete(ctx, "db1"); err != nil {
			t.Fatal(err)
		}
	})
	if got := c.ok("volume", "rm", "data"); got != "data\n" {
		t.Errorf("volume rm data = %q", got)
	}
	if _, err := os.Stat(filepath.Join(c.root, "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("volume rm left %v", err)
	}
	if got := c.ok("volume", "ls", "-q"); got != "" {
		t.Errorf("volume ls -q after all removed = %q", got)
	}
	c.fails(1, `volume "data": not found`, "volume", "rm", "data")
}
