package metadata_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/diff"

	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/overlay"
	"github.com/strata-oci/strata/snapshots/snapshottest"
)

func TestSnapshotterConformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T, root string) snapshots.Snapshotter {
		backend, err := overlay.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return newDB(t, metadata.WithSnapshotter("overlayfs", backend)).Snapshotter("overlayfs")
	})
}

func backendNames(t *testing.T, sn snapshots.Snapshotter) []string {
	t.Helper()
	var out []string
	err := sn.Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		out = append(out, info.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestSnapshotGC checks that GC removes unreferenced snapshot records and
// then their backend snapshots, children first, and keeps what a root or
// a lease holds; each namespace's snapshots are its own.
func TestSnapshotGC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("overlay needs root")
	}
	backend, err := overlay.New(filepath.Join(t.TempDir(), "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(t, metadata.WithSnapshotter("overlayfs", backend))
	sn := db.Snapshotter("overlayfs")
	if db.Snapshotter("btrfs") != nil {
		t.Fatal("Snapshotter of an unregistered name is not nil")
	}
	a := namespaces.WithNamespace(context.Background(), "a")
	b := namespaces.WithNamespace(context.Background(), "b")
	commit := func(ctx context.Context, name, parent string, opts ...snapshots.Opt) {
		t.Helper()
		if _, err := sn.Prepare(ctx, "k-"+name, parent); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, name, "k-"+name, opts...); err != nil {
			t.Fatal(err)
		}
	}
	// Unreferenced chain: l1 ← l2 ← l3, collected children first.
	commit(a, "l1", "")
	commit(a, "l2", "l1")
	commit(a, "l3", "l2")
	// Rooted chain: r1 ← r2 (gc.root on r2 keeps r1 through the parent).
	commit(a, "r1", "")
	commit(a, "r2", "r1", snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "1"}))
	// Leased: an active snapshot made under a lease.
	l, err := db.Leases().Create(a, leases.WithID("pull"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(leases.WithLease(a, l.ID), "leased", ""); err != nil {
		t.Fatal(err)
	}
	// Not shared: a Prepare in b carrying the snapshot.ref of a's r1 gets a
	// new active snapshot; b commits its own r1, which only b's records name.
	ref := snapshots.WithLabels(map[string]string{"containerd.io/snapshot.ref": "r1"})
	if _, err := sn.Prepare(b, "extract", "", ref); err != nil {
		t.Fatalf("Prepare in b with the snapshot.ref of a layer only a has = %v, want a new snapshot", err)
	}
	if err := sn.Commit(b, "r1", "extract", snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(b, "extract2", "", ref); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Prepare in b with the snapshot.ref of b's own r1 = %v, want already exists", err)
	}
	if n := len(backendNames(t, backend)); n != 7 {
		t.Fatalf("%d backend snapshots before GC, want 7 (a's 6 and b's r1)", n)
	}
	st, err := db.GarbageCollect(context.Background(), metadata.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapshotsRemoved != 3 {
		t.Errorf("SnapshotsRemoved = %d, want 3", st.SnapshotsRemoved)
	}
	for _, key := range []string{"l1", "l2", "l3"} {
		if _, err := sn.Stat(a, key); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Stat(%s) after GC = %v, want not found", key, err)
		}
	}
	for _, key := range []string{"r1", "r2", "leased"} {
		if _, err := sn.Stat(a, key); err != nil {
			t.Errorf("Stat(%s) after GC = %v, want kept", key, err)
		}
	}
	if n := len(backendNames(t, backend)); n != 4 {
		t.Fatalf("backend after GC: %v, want the 4 kept", backendNames(t, backend))
	}
	// a lets go of r1 and r2; b still holds r1.
	for _, key := range []string{"r2", "r1"} {
		if err := sn.Remove(a, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Leases().Delete(a, l); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GarbageCollect(context.Background(), metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	got := backendNames(t, backend)
	if len(got) != 1 {
		t.Fatalf("backend after a released everything: %v, want b's r1 only", got)
	}
	mounts, err := sn.View(b, "v", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 {
		t.Fatalf("view of b's r1: %v", mounts)
	}
	// Keys live per namespace: b's key "k-l1" does not clash with a's.
	if _, err := sn.Prepare(b, "leased", ""); err != nil {
		t.Fatalf("Prepare in b of a key a uses = %v", err)
	}
	if keys := backendNames(t, backend); !slices.ContainsFunc(keys, func(k string) bool { return len(k) > 2 && k[:2] == "b/" }) {
		t.Fatalf("backend keys %v carry no namespace", keys)
	}
}

// TestSnapshotErrorsNameUserKeys: errors from the driver name the keys the
// user chose, not the driver's "<namespace>/<seq>/<key>", and keep their
// class.
func TestSnapshotErrorsNameUserKeys(t *testing.T) {
	backend, err := overlay.New(filepath.Join(t.TempDir(), "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	sn := newDB(t, metadata.WithSnapshotter("overlayfs", backend)).Snapshotter("overlayfs")
	ctx := namespaces.WithNamespace(context.Background(), "team")
	if _, err := sn.Prepare(ctx, "work", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "work"); err != nil {
		t.Fatal(err)
	}
	_, err = sn.Mounts(ctx, "base")
	if err == nil || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Mounts(committed) = %v, want failed precondition", err)
	}
	if strings.Contains(err.Error(), "team/") {
		t.Fatalf("error names the driver's key: %v", err)
	}
	if !strings.Contains(err.Error(), `"base"`) {
		t.Fatalf("error does not name the snapshot: %v", err)
	}
}

// TestSnapshotRefNotAdoptedAcrossNamespaces (issue 11, item 2): a snapshot
// that namespace a committed under a layer's chain ID, here an empty one
// standing in for a hostile client's, is never adopted by an unpack in b:
// b's Prepare with containerd.io/snapshot.ref=<chain ID> gets a snapshot of
// its own to apply the layer into.
func TestSnapshotRefNotAdoptedAcrossNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("applying a layer sets owners: needs root")
	}
	backend, err := overlay.New(filepath.Join(t.TempDir(), "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	sn := newDB(t, metadata.WithSnapshotter("overlayfs", backend)).Snapshotter("overlayfs")
	a := namespaces.WithNamespace(context.Background(), "a")
	b := namespaces.WithNamespace(context.Background(), "b")
	layer := tartest.Tar(tartest.File("etc/os-release", "ID=real\n"))
	diffID := digest.FromBytes(layer)
	chain := identity.ChainID([]digest.Digest{diffID}).String()

	// a commits an empty snapshot named after the layer's chain ID.
	if _, err := sn.Prepare(a, "poison", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(a, chain, "poison"); err != nil {
		t.Fatal(err)
	}

	// b unpacks the layer as ctr does: Prepare with snapshot.ref, apply,
	// commit under the chain ID.
	ref := snapshots.WithLabels(map[string]string{"containerd.io/snapshot.ref": chain})
	mounts, err := sn.Prepare(b, "extract-1", "", ref)
	if err != nil {
		t.Fatalf("Prepare(b, snapshot.ref=%s) = %v, want a new snapshot (a's must not be adopted)", chain, err)
	}
	if _, err := sn.Stat(b, chain); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stat(b, %s) after Prepare = %v, want not found", chain, err)
	}
	res, err := diff.Apply(b, mounts, bytes.NewReader(layer), archive.WhiteoutOverlay)
	if err != nil {
		t.Fatal(err)
	}
	if res.DiffID != diffID {
		t.Fatalf("applied diff ID %s, want %s", res.DiffID, diffID)
	}
	if err := sn.Commit(b, chain, "extract-1"); err != nil {
		t.Fatal(err)
	}
	// b's chain holds the layer; a's is still empty.
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []string
	}{{"b", b, []string{"etc"}}, {"a", a, nil}} {
		vm, err := sn.View(tc.ctx, "check", chain)
		if err != nil {
			t.Fatal(err)
		}
		if len(vm) != 1 || vm[0].Type != "bind" {
			t.Fatalf("View(%s, %s) = %v, want one bind mount", tc.name, chain, vm)
		}
		ents, err := os.ReadDir(vm[0].Source)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("namespace %s: snapshot %s holds %v, want %v", tc.name, chain, got, tc.want)
		}
	}
	// Now b has the layer: its own record answers AlreadyExists.
	if _, err := sn.Prepare(b, "extract-2", "", ref); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Prepare(b, snapshot.ref=%s) once b has it = %v, want already exists", chain, err)
	}
	if _, err := sn.Stat(b, "extract-2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stat(b, extract-2) after already exists = %v, want not found", err)
	}
}
