package server_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
)

// TestCtrImagesPull is the end-to-end test of the daemon: the real ctr
// pulls an image with whiteouts from a real registry through the content,
// images, leases, snapshots and diff services, checks it, and mounts it.
func TestCtrImagesPull(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "e2e/whiteouts", "v1")
	d := servertest.Start(t)
	if d.Store.OverlayUnavailable != nil {
		t.Fatalf("overlayfs unavailable under the daemon's root: %v", d.Store.OverlayUnavailable)
	}
	const ns = "e2e"

	out := d.Ctr(t, ns, "images", "pull", "--plain-http", fix.Ref)
	if !strings.Contains(out, "unpacking") || !strings.Contains(out, "done") {
		t.Fatalf("ctr images pull %s:\n%s", fix.Ref, out)
	}

	rows := servertest.CtrTable(t, d.Ctr(t, ns, "images", "ls"))
	if len(rows) != 1 || rows[0]["REF"] != fix.Ref || rows[0]["DIGEST"] != fix.Root.Digest.String() || rows[0]["TYPE"] != fix.Root.MediaType {
		t.Fatalf("ctr images ls = %v, want %s at %s (%s)", rows, fix.Ref, fix.Root.Digest, fix.Root.MediaType)
	}
	rows = servertest.CtrTable(t, d.Ctr(t, ns, "images", "check"))
	// STATUS is "complete (have/want)": config and the three layers.
	if len(rows) != 1 || rows[0]["REF"] != fix.Ref || rows[0]["STATUS"] != "complete (4/4)" || rows[0]["UNPACKED"] != "true" {
		t.Fatalf("ctr images check = %v, want %s complete and unpacked", rows, fix.Ref)
	}

	// The committed chain: three layers in overlayfs.
	rows = servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "ls"))
	committed := 0
	for _, r := range rows {
		if r["KIND"] == "Committed" {
			committed++
		}
	}
	if committed != 3 || len(rows) != 3 {
		t.Fatalf("ctr snapshots ls after the pull = %v, want 3 committed layers", rows)
	}

	// The top of the chain: the committed snapshot no other one is on.
	parents := map[string]bool{}
	for _, r := range rows {
		parents[r["PARENT"]] = true
	}
	top := ""
	for _, r := range rows {
		if !parents[r["KEY"]] {
			top = r["KEY"]
		}
	}
	var man ocispec.Manifest
	var cfg ocispec.Image
	if err := json.Unmarshal(fix.Blobs[fix.Root.Digest], &man); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fix.Blobs[man.Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	if want := images.ChainIDs(cfg.RootFS.DiffIDs)[2].String(); top != want {
		t.Fatalf("top of the pulled chain = %q, want the image's chain ID %s", top, want)
	}

	// ctr images mount: a lease named after the target, an active
	// snapshot on the top layer, the mount.
	target := t.TempDir()
	// Unmounted even when the test fails before the unmount below.
	t.Cleanup(func() {
		if err := mount.UnmountUnder(target); err != nil {
			t.Error(err)
		}
	})
	d.Ctr(t, ns, "images", "mount", fix.Ref, target)
	got := testutil.ReadTree(t, target)
	d.Ctr(t, ns, "images", "unmount", "--rm", target)
	if mounted, _ := mount.Under(filepath.Dir(target)); len(mounted) > 0 {
		t.Fatalf("still mounted after ctr images unmount: %v", mounted)
	}
	if diffs := testutil.DiffTrees(fix.Tree, got); len(diffs) > 0 {
		t.Fatalf("pulled %s: tree differs from the fixture:\n%s", fix.Ref, strings.Join(diffs, "\n"))
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	sn := d.Store.Snapshotter("overlayfs")
	n := 0
	if err := sn.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d snapshots after removing the view, want the 3 layers", n)
	}
}
