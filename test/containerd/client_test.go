package containerd

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"

	"github.com/strata-oci/strata/testutil"
)

// TestContainerdClient (issue 12): containerd v2.4.2's own Go client, as
// nerdctl or BuildKit use it, against stratad: it pulls and unpacks an
// image (content writes, image records, the diff service applying layers
// into snapshots), reads it back, works under a lease, and removes it.
func TestContainerdClient(t *testing.T) {
	requireRoot(t)
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "client/app", "v1")
	root, err := os.MkdirTemp("", "stratad-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	d, err := startStratad(root, "overlayfs", "shared")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := containerd.New(filepath.Join(root, "s.sock"), containerd.WithDefaultNamespace("client"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "client")

	if _, err := c.Version(ctx); err != nil {
		t.Fatalf("Version = %v", err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	img, err := c.Pull(ctx, fx.Ref, containerd.WithResolver(resolver), containerd.WithPullUnpack, containerd.WithPullSnapshotter("overlayfs"))
	if err != nil {
		t.Fatalf("Pull = %v", err)
	}
	if img.Target().Digest != fx.Root.Digest {
		t.Fatalf("pulled %s, want %s", img.Target().Digest, fx.Root.Digest)
	}
	unpacked, err := img.IsUnpacked(ctx, "overlayfs")
	if err != nil || !unpacked {
		t.Fatalf("IsUnpacked = %v, %v", unpacked, err)
	}
	if size, err := img.Size(ctx); err != nil || size == 0 {
		t.Fatalf("Size = %d, %v", size, err)
	}
	if _, err := c.ContentStore().Info(ctx, fx.Root.Digest); err != nil {
		t.Fatalf("content Info of the manifest = %v", err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil || len(diffIDs) == 0 {
		t.Fatalf("RootFS = %v, %v", diffIDs, err)
	}
	sn := c.SnapshotService("overlayfs")
	n := 0
	if err := sn.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }); err != nil || n != len(diffIDs) {
		t.Fatalf("snapshots after an unpacking pull: %d, %v; want %d", n, err, len(diffIDs))
	}

	// Work under a lease, as clients do: a view of the image's top layer.
	lctx, done, err := c.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(lctx, "view", identity.ChainID(diffIDs).String()); err != nil {
		t.Fatalf("View = %v", err)
	}
	if err := done(lctx); err != nil {
		t.Fatalf("lease release = %v", err)
	}
	if ls, err := c.LeasesService().List(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("leases after release = %+v, %v", ls, err)
	}
	if err := c.ImageService().Delete(ctx, img.Name(), images.SynchronousDelete()); err != nil {
		t.Fatalf("image Delete = %v", err)
	}
	if _, err := c.ContentStore().Info(ctx, fx.Root.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("manifest after a synchronous image delete = %v, want not found", err)
	}
}
