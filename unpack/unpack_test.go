package unpack_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/unpack"
	"github.com/strata-oci/strata/wiring"
)

// pulledPacked pulls the whiteout fixture without unpacking it and returns
// the store and the host platform's manifest.
func pulledPacked(t *testing.T) (*wiring.Store, context.Context, testutil.Fixture, ocispec.Descriptor) {
	t.Helper()
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "later", "v1")
	st, ctx := storetest.Open(t)
	img := storetest.Pull(t, ctx, st, fx.Ref, pull.Options{NoUnpack: true})
	if n := snapshotCount(t, ctx, st); n != 0 {
		t.Fatalf("--no-unpack made %d snapshots", n)
	}
	desc, _, err := images.Manifest(ctx, st.Content(), img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	return st, ctx, fx, desc
}

func snapshotCount(t *testing.T, ctx context.Context, st *wiring.Store) int {
	t.Helper()
	n := 0
	err := st.Snapshotter("").Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestManifest: an image pulled with --no-unpack is unpacked from the
// content store later, into both snapshotters (overlayfs rebases, native
// does not), with the same tree; the config's label keeps the snapshots
// through a collection.
func TestManifest(t *testing.T) {
	st, ctx, fx, desc := pulledPacked(t)
	for _, sn := range []string{"overlayfs", "native"} {
		top, err := unpack.Manifest(ctx, st, desc, unpack.Options{Snapshotter: sn})
		if err != nil {
			t.Fatalf("Manifest into %s: %v", sn, err)
		}
		mounts, err := st.Snapshotter(sn).View(ctx, "view-"+sn, top.String())
		if err != nil {
			t.Fatal(err)
		}
		err = mount.WithTempMount(ctx, mounts, func(root string) error {
			storetest.WantTree(t, fx.Tree, testutil.ReadTree(t, root))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Snapshotter(sn).Remove(ctx, "view-"+sn)
		// Again: what is unpacked already is kept.
		if again, err := unpack.Manifest(ctx, st, desc, unpack.Options{Snapshotter: sn}); err != nil || again != top {
			t.Fatalf("Manifest into %s again = %s, %v; want %s", sn, again, err, top)
		}
	}
	if _, err := st.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := snapshotCount(t, ctx, st); n != 3 {
		t.Fatalf("after GC %d overlay snapshots, want the image's 3 (held by the config's label)", n)
	}
}

// TestManifestMissingLayer: a layer blob not in the store is
// errdefs.ErrNotFound naming it, and nothing is unpacked.
func TestManifestMissingLayer(t *testing.T) {
	st, ctx, _, desc := pulledPacked(t)
	man, err := images.ReadManifest(ctx, st.Content(), desc)
	if err != nil {
		t.Fatal(err)
	}
	gone := man.Layers[1].Digest
	if err := st.Content().Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	_, err = unpack.Manifest(ctx, st, desc, unpack.Options{})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), gone.String()) {
		t.Fatalf("Manifest without layer %s = %v, want errdefs.ErrNotFound naming it", gone, err)
	}
	if n := snapshotCount(t, ctx, st); n != 0 {
		t.Fatalf("a failed unpack left %d snapshots", n)
	}
}

// plainSnapshotter hides the Rebaser of the snapshotter it wraps.
type plainSnapshotter struct{ snapshots.Snapshotter }

// TestPlanRebase: whether a plan applies layers apart from their parents
// comes from the snapshotter's optional snapshots.Rebaser, not its name.
func TestPlanRebase(t *testing.T) {
	st, ctx, _, desc := pulledPacked(t)
	for _, tc := range []struct {
		name string
		sn   snapshots.Snapshotter
		want bool
	}{
		{"overlayfs", st.Snapshotter("overlayfs"), true},
		{"native", st.Snapshotter("native"), false},
		{"overlayfs-without-rebaser", plainSnapshotter{st.Snapshotter("overlayfs")}, false},
	} {
		pn, err := unpack.NewPlan(ctx, st.Content(), desc, "overlayfs", tc.sn, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pn.Rebase != tc.want || len(pn.Chains) != 3 || pn.Top() != pn.Chains[2] {
			t.Errorf("NewPlan(%s) = rebase %v, %d chains; want rebase %v, 3 chains", tc.name, pn.Rebase, len(pn.Chains), tc.want)
		}
	}
}

func TestVerifyDiffID(t *testing.T) {
	layer := ocispec.Descriptor{Digest: digest.FromString("layer")}
	a, b := digest.FromString("a"), digest.FromString("b")
	if err := unpack.VerifyDiffID(layer, a, a); err != nil {
		t.Fatalf("VerifyDiffID(same) = %v, want nil", err)
	}
	err := unpack.VerifyDiffID(layer, a, b)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), a.String()) || !strings.Contains(err.Error(), b.String()) || !strings.Contains(err.Error(), layer.Digest.String()) {
		t.Fatalf("VerifyDiffID(differ) = %v, want errdefs.ErrFailedPrecondition naming the layer and both digests", err)
	}
}
