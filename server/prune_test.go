package server_test

import (
	"context"
	"testing"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/push"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
)

// TestCtrPruneReferences (issue 12, item 1): `ctr content prune references`
// drops the layer references of an unpacked image's manifest; the next
// collection frees the compressed layers (GC follows labels only, as
// containerd's), the image still mounts the same tree, and a push fetches
// the layers again from the registry it came from.
func TestCtrPruneReferences(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "app", "v1")
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	img := storetest.Pull(t, ctx, d.Store, fx.Ref, pull.Options{})
	cs := d.Store.DB.ContentStore()
	_, man, err := images.Manifest(ctx, cs, img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}

	d.Ctr(t, "default", "content", "prune", "references")
	if _, err := d.Store.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range man.Layers {
		if _, err := cs.Info(ctx, l.Digest); err == nil {
			t.Errorf("layer %s still in the store after prune references and a collection", l.Digest)
		}
	}
	storetest.WantTree(t, fx.Tree, storetest.Tree(t, ctx, d.Store, img.Name))
	if _, err := push.New(d.Store, docker.NewResolver(docker.Options{})).Push(ctx, img.Name, reference.Reference{Domain: reg.Host, Path: "copy", Tag: "v1"}, push.Options{}); err != nil {
		t.Fatalf("push after prune references = %v", err)
	}
}
