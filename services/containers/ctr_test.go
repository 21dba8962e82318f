package containers_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestCtrContainers: the containers verbs of the real ctr 1.6 and 2.4
// against the daemon: create from a pulled image, ls (with filters, -q),
// info, label, a second create of an id, a namespace delete refused while
// a container is in it, GC keeping a container's snapshot and freeing it
// once the container is gone, rm.
func TestCtrContainers(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "ctr/containers", "v1")
	for _, cc := range testutil.CtrClients() {
		t.Run(cc.Name, func(t *testing.T) {
			bin := cc.Bin(t)
			d := servertest.Start(t)
			const ns = "ctrc"
			run := func(args ...string) (string, error) {
				t.Helper()
				out, err := exec.Command(bin, append([]string{"-a", d.Address, "-n", ns}, args...)...).CombinedOutput()
				return string(out), err
			}
			ok := func(args ...string) string {
				t.Helper()
				out, err := run(args...)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", cc.Name, strings.Join(args, " "), err, out)
				}
				return out
			}
			ok("images", "pull", "--plain-http", fix.Ref)
			ok("containers", "create", "--label", "role=web", fix.Ref, "c1")
			ok("containers", "create", fix.Ref, "c2")

			ls := ok("containers", "ls")
			lines := strings.Split(strings.TrimSpace(ls), "\n")
			if len(lines) != 3 || !strings.HasPrefix(strings.Join(strings.Fields(lines[0]), " "), "CONTAINER IMAGE RUNTIME") {
				t.Fatalf("containers ls:\n%s\nwant a header and c1, c2", ls)
			}
			for i, id := range []string{"c1", "c2"} {
				if f := strings.Fields(lines[i+1]); len(f) != 3 || f[0] != id || f[1] != fix.Ref || f[2] != "io.containerd.runc.v2" {
					t.Errorf("containers ls row %d = %q, want %s %s io.containerd.runc.v2", i+1, lines[i+1], id, fix.Ref)
				}
			}
			if got := ok("containers", "ls", "-q"); got != "c1\nc2\n" {
				t.Errorf("containers ls -q = %q, want c1, c2", got)
			}
			if got := ok("containers", "ls", "-q", "labels.role==web"); got != "c1\n" {
				t.Errorf("containers ls -q labels.role==web = %q, want c1", got)
			}
			if got := ok("containers", "ls", "-q", "id==c2", "image=="+fix.Ref+",labels.role==web"); got != "c1\nc2\n" {
				t.Errorf("containers ls -q with two filters = %q, want c1 and c2", got)
			}

			var info struct {
				ID          string
				Labels      map[string]string
				Image       string
				Runtime     struct{ Name string }
				Snapshotter string
				SnapshotKey string
				Spec        struct {
					Process struct{ Args []string }
					Root    struct{ Path string }
				}
				CreatedAt, UpdatedAt string
			}
			readInfo := func(id string) {
				t.Helper()
				out := ok("containers", "info", id)
				info.Labels = nil
				if err := json.Unmarshal([]byte(out), &info); err != nil {
					t.Fatalf("containers info %s: %v\n%s", id, err, out)
				}
			}
			readInfo("c1")
			if info.ID != "c1" || info.Image != fix.Ref || info.Runtime.Name != "io.containerd.runc.v2" || info.SnapshotKey != "c1" ||
				info.Snapshotter == "" || info.Labels["role"] != "web" || info.Spec.Root.Path == "" || info.CreatedAt == "" {
				t.Errorf("containers info c1 = %+v", info)
			}

			ok("containers", "label", "c1", "tier=front")
			readInfo("c1")
			if info.Labels["tier"] != "front" || info.Labels["role"] != "web" {
				t.Errorf("labels after ctr containers label c1 tier=front = %v", info.Labels)
			}
			ok("containers", "label", "c1", "tier=")
			readInfo("c1")
			if _, has := info.Labels["tier"]; has || info.Labels["role"] != "web" {
				t.Errorf("labels after ctr containers label c1 tier= = %v, want role only", info.Labels)
			}

			if out, err := run("containers", "create", fix.Ref, "c1"); err == nil || !strings.Contains(out, "already exists") {
				t.Errorf("second create of c1 = %v: %s; want already exists", err, out)
			}
			if out, err := run("containers", "info", "nothere"); err == nil || !strings.Contains(out, "not found") {
				t.Errorf("containers info nothere = %v: %s; want not found", err, out)
			}
			if out, err := run("namespaces", "rm", ns); err == nil || !strings.Contains(out, "containers") || !strings.Contains(out, "precondition") {
				t.Errorf("namespaces rm %s with containers = %v: %s; want it refused (failed precondition) naming the containers", ns, err, out)
			}
			if got := ok("namespaces", "ls", "-q"); !strings.Contains(got, ns+"\n") {
				t.Errorf("namespaces ls -q after the refused rm = %q, want %s still there", got, ns)
			}

			// GC keeps each container's snapshot (nothing else holds
			// them: ctr's lease ended with its create).
			ctx := namespaces.WithNamespace(context.Background(), ns)
			gc := func() {
				t.Helper()
				if _, err := d.Store.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			snapshots := func() string {
				t.Helper()
				var keys []string
				for _, line := range strings.Split(strings.TrimSpace(ok("snapshots", "ls")), "\n")[1:] {
					if f := strings.Fields(line); len(f) > 0 && (f[0] == "c1" || f[0] == "c2") {
						keys = append(keys, f[0])
					}
				}
				return strings.Join(keys, " ")
			}
			gc()
			if got := snapshots(); got != "c1 c2" {
				t.Fatalf("active snapshots after GC with both containers = %q, want c1 c2", got)
			}
			// rm --keep-snapshot leaves c2's snapshot to GC (the one the
			// delete schedules, or this one); rm removes c1's itself.
			ok("containers", "rm", "--keep-snapshot", "c2")
			gc()
			if got := snapshots(); got != "c1" {
				t.Fatalf("active snapshots after c2's rm and GC = %q, want c1", got)
			}
			ok("containers", "rm", "c1")
			if got := ok("containers", "ls", "-q"); got != "" {
				t.Errorf("containers ls -q after rm = %q, want none", got)
			}
			if got := snapshots(); got != "" {
				t.Errorf("active snapshots after rm c1 = %q, want none", got)
			}
			if out, err := run("containers", "rm", "c1"); err == nil || !strings.Contains(out, "not found") {
				t.Errorf("second rm c1 = %v: %s; want not found", err, out)
			}
		})
	}
}
