package diff_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
)

// diffTestLayers are two layers: the second changes, removes (a whiteout) and
// empties (an opaque directory) what the first made.
var diffTestLayers = [][]byte{
	tartest.Tar(
		tartest.Dir("etc/"),
		tartest.File("etc/hostname", "base"),
		tartest.File("etc/gone", "removed by layer 2"),
		tartest.Dir("var/"),
		tartest.File("var/old", "hidden by the opaque dir"),
		tartest.Symlink("link", "etc/hostname"),
		tartest.Entry{Name: "home/", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
	),
	tartest.Tar(
		tartest.File("etc/hostname", "top"),
		tartest.File("etc/.wh.gone", ""),
		tartest.Dir("var/"),
		tartest.File("var/.wh..wh..opq", ""),
		tartest.File("var/new", "new"),
		// home/ is not listed: it keeps layer 1's mode and owner.
		tartest.File("home/.profile", "PS1='$ '"),
	),
}

// diffGCRoot keeps what the tests make from the collections that their
// own deletions schedule: nothing else refers to it (containerd's rules).
var diffGCRoot = map[string]string{"containerd.io/gc.root": "test"}

// diffRooted makes every snapshot it creates a GC root.
type diffRooted struct{ snapshots.Snapshotter }

func (r diffRooted) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return r.Snapshotter.Prepare(ctx, key, parent, append(opts, snapshots.WithLabels(diffGCRoot))...)
}

func (r diffRooted) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return r.Snapshotter.View(ctx, key, parent, append(opts, snapshots.WithLabels(diffGCRoot))...)
}

func (r diffRooted) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return r.Snapshotter.Commit(ctx, name, key, append(opts, snapshots.WithLabels(diffGCRoot))...)
}

// diffSnapshotter returns the daemon's snapshotter name, making GC roots.
func diffSnapshotter(t *testing.T, d *servertest.Daemon, name string) snapshots.Snapshotter {
	t.Helper()
	sn := d.Store.Snapshotter(name)
	if sn == nil {
		t.Fatalf("no snapshotter %s: %v", name, d.Store.OverlayUnavailable)
	}
	return diffRooted{sn}
}

// diffPutBlob stores data in the daemon's content store in ctx's namespace.
func diffPutBlob(t *testing.T, d *servertest.Daemon, ctx context.Context, data []byte, mediaType string, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	labels = maps.Clone(labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, diffGCRoot)
	if err := content.WriteBlob(ctx, d.Store.DB.ContentStore(), "test-"+desc.Digest.String(), bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	return desc
}

func diffDescToProto(desc ocispec.Descriptor) *types.Descriptor {
	return &types.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest.String(), Size: desc.Size}
}

func diffMountsToProto(mounts []mount.Mount) []*types.Mount {
	var out []*types.Mount
	for _, m := range mounts {
		out = append(out, &types.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	return out
}

// diffViewTree reads the tree of the committed snapshot name.
func diffViewTree(t *testing.T, ctx context.Context, sn snapshots.Snapshotter, name string) map[string]testutil.TreeEntry {
	t.Helper()
	key := "view-" + name
	mounts, err := sn.View(ctx, key, name)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(ctx, key)
	var tree map[string]testutil.TreeEntry
	if err := mount.WithTempMount(ctx, mounts, func(root string) error {
		tree = testutil.ReadTree(t, root)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestDiffApply unpacks two layers through the diff service into each
// snapshotter (overlay upper directory, bind mount of a full copy) and
// compares the result with the layers' tree.
func TestDiffApply(t *testing.T) {
	d := servertest.Start(t)
	dc := diffapi.NewDiffClient(d.Conn)
	const ns = "diff-apply"
	ctx := namespaces.WithNamespace(context.Background(), ns)
	rctx := servertest.Context(context.Background(), ns)
	for _, name := range []string{"overlayfs", "native"} {
		t.Run(name, func(t *testing.T) {
			sn := diffSnapshotter(t, d, name)
			parent := ""
			var diffIDs []digest.Digest
			for i, layer := range diffTestLayers {
				blob := diffPutBlob(t, d, ctx, tartest.Gzip(layer), ocispec.MediaTypeImageLayerGzip, nil)
				key := fmt.Sprintf("%s-extract-%d", name, i)
				mounts, err := sn.Prepare(ctx, key, parent)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := dc.Apply(rctx, &diffapi.ApplyRequest{Diff: diffDescToProto(blob), Mounts: diffMountsToProto(mounts), SyncFs: i == 1})
				if err != nil {
					t.Fatalf("Apply(layer %d) = %v", i, err)
				}
				diffIDs = append(diffIDs, digest.FromBytes(layer))
				if got := resp.Applied; got.Digest != digest.FromBytes(layer).String() || got.Size != int64(len(layer)) || got.MediaType != ocispec.MediaTypeImageLayer {
					t.Fatalf("Apply(layer %d) = %+v, want %s, %d bytes, %s", i, got, digest.FromBytes(layer), len(layer), ocispec.MediaTypeImageLayer)
				}
				chain := fmt.Sprintf("%s-chain-%d", name, i)
				if err := sn.Commit(ctx, chain, key); err != nil {
					t.Fatal(err)
				}
				parent = chain
			}
			got := diffViewTree(t, ctx, sn, parent)
			if diffs := testutil.DiffTrees(testutil.ComputeTree(diffTestLayers), got); len(diffs) > 0 {
				t.Fatalf("applied tree differs from the layers':\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

func TestDiffApplyErrors(t *testing.T) {
	d := servertest.Start(t)
	dc := diffapi.NewDiffClient(d.Conn)
	const ns = "diff-errors"
	ctx := namespaces.WithNamespace(context.Background(), ns)
	rctx := servertest.Context(context.Background(), ns)
	layer := diffTestLayers[0]
	wrong := diffPutBlob(t, d, ctx, tartest.Gzip(layer), ocispec.MediaTypeImageLayerGzip, map[string]string{labels.Uncompressed: digest.FromString("not this").String()})
	good := diffPutBlob(t, d, ctx, layer, ocispec.MediaTypeImageLayer, nil)
	sn := diffSnapshotter(t, d, "native")
	mounts, err := sn.Prepare(ctx, "target", "")
	if err != nil {
		t.Fatal(err)
	}
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("missing"), Size: 7}
	config := good
	config.MediaType = ocispec.MediaTypeImageConfig
	for _, tc := range []struct {
		name string
		ctx  context.Context
		desc ocispec.Descriptor
		want error
	}{
		{"DiffIDMismatch", rctx, wrong, errdefs.ErrFailedPrecondition},
		{"Missing", rctx, missing, errdefs.ErrNotFound},
		{"NotALayer", rctx, config, errdefs.ErrNotImplemented},
		{"NoNamespace", context.Background(), good, errdefs.ErrFailedPrecondition},
		{"OtherNamespace", servertest.Context(context.Background(), "elsewhere"), good, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dc.Apply(tc.ctx, &diffapi.ApplyRequest{Diff: diffDescToProto(tc.desc), Mounts: diffMountsToProto(mounts)})
			if err := errgrpc.ToNative(err); !errors.Is(err, tc.want) {
				t.Fatalf("Apply(%s) = %v, want %v", tc.desc.Digest, err, tc.want)
			}
		})
	}
	// A view is read-only: nothing is applied.
	view, err := sn.View(ctx, "view", "")
	if err == nil {
		_, err = dc.Apply(rctx, &diffapi.ApplyRequest{Diff: diffDescToProto(good), Mounts: diffMountsToProto(view)})
		if err := errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Apply onto a view = %v, want failed precondition", err)
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatal(err)
	}
}

// TestDiffRoundTrip writes the difference of an active snapshot over its
// parent as a layer through the diff service, then applies that layer on
// the same parent: the two trees must be equal.
func TestDiffRoundTrip(t *testing.T) {
	d := servertest.Start(t)
	dc := diffapi.NewDiffClient(d.Conn)
	const ns = "diff-roundtrip"
	ctx := namespaces.WithNamespace(context.Background(), ns)
	rctx := servertest.Context(context.Background(), ns)
	for _, tc := range []struct {
		name, snapshotter, mediaType string
	}{
		{"OverlayGzip", "overlayfs", ""},
		{"OverlayZstd", "overlayfs", ocispec.MediaTypeImageLayerZstd},
		{"NativeTar", "native", ocispec.MediaTypeImageLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := diffSnapshotter(t, d, tc.snapshotter)
			// The base: layer 1, applied through the service.
			base := diffPutBlob(t, d, ctx, diffTestLayers[0], ocispec.MediaTypeImageLayer, nil)
			mounts, err := sn.Prepare(ctx, tc.name+"-base", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dc.Apply(rctx, &diffapi.ApplyRequest{Diff: diffDescToProto(base), Mounts: diffMountsToProto(mounts)}); err != nil {
				t.Fatal(err)
			}
			if err := sn.Commit(ctx, tc.name+"-chain-0", tc.name+"-base"); err != nil {
				t.Fatal(err)
			}
			// Layer 2 applied, then read back as a layer.
			top := diffPutBlob(t, d, ctx, tartest.Gzip(diffTestLayers[1]), ocispec.MediaTypeImageLayerGzip, nil)
			upper, err := sn.Prepare(ctx, tc.name+"-top", tc.name+"-chain-0")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dc.Apply(rctx, &diffapi.ApplyRequest{Diff: diffDescToProto(top), Mounts: diffMountsToProto(upper)}); err != nil {
				t.Fatal(err)
			}
			lower, err := sn.View(ctx, tc.name+"-lower", tc.name+"-chain-0")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := dc.Diff(rctx, &diffapi.DiffRequest{
				Left: diffMountsToProto(lower), Right: diffMountsToProto(upper),
				MediaType: tc.mediaType, Labels: map[string]string{"made-by": "diff-test", "containerd.io/gc.root": "test"},
			})
			if err != nil {
				t.Fatalf("Diff = %v", err)
			}
			want := tc.mediaType
			if want == "" {
				want = ocispec.MediaTypeImageLayerGzip
			}
			if resp.Diff.MediaType != want {
				t.Fatalf("Diff media type = %s, want %s", resp.Diff.MediaType, want)
			}
			dgst := digest.Digest(resp.Diff.Digest)
			info, err := d.Store.DB.ContentStore().Info(ctx, dgst)
			if err != nil {
				t.Fatalf("Info(%s) of the written layer = %v", dgst, err)
			}
			if info.Size != resp.Diff.Size || info.Labels["made-by"] != "diff-test" || info.Labels[labels.Uncompressed] == "" {
				t.Fatalf("written layer %s = %+v, response size %d", dgst, info, resp.Diff.Size)
			}
			// Apply the written layer on the same parent.
			again, err := sn.Prepare(ctx, tc.name+"-again", tc.name+"-chain-0")
			if err != nil {
				t.Fatal(err)
			}
			applied, err := dc.Apply(rctx, &diffapi.ApplyRequest{Diff: resp.Diff, Mounts: diffMountsToProto(again)})
			if err != nil {
				t.Fatalf("Apply of the written layer = %v", err)
			}
			if applied.Applied.Digest != info.Labels[labels.Uncompressed] {
				t.Fatalf("Apply of the written layer: diff ID %s, labelled %s", applied.Applied.Digest, info.Labels[labels.Uncompressed])
			}
			if err := sn.Commit(ctx, tc.name+"-chain-1", tc.name+"-top"); err != nil {
				t.Fatal(err)
			}
			if err := sn.Commit(ctx, tc.name+"-chain-1b", tc.name+"-again"); err != nil {
				t.Fatal(err)
			}
			want1, got := diffViewTree(t, ctx, sn, tc.name+"-chain-1"), diffViewTree(t, ctx, sn, tc.name+"-chain-1b")
			if diffs := testutil.DiffTrees(want1, got); len(diffs) > 0 {
				t.Fatalf("tree of the written layer differs:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
	_, err := dc.Diff(rctx, &diffapi.DiffRequest{Right: []*types.Mount{{Type: "bind", Source: t.TempDir(), Options: []string{"rbind"}}}, MediaType: "application/x-tar"})
	if err := errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("Diff(application/x-tar) = %v, want not implemented", err)
	}
}
