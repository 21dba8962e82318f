package push_test

import (
	"testing"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/push"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
)

// TestDiscardUnpackedLayers (issue 12, item 1): a pull with
// DiscardUnpackedLayers (stratad's discard_unpacked_layers) leaves no
// compressed layer blob once its lease is gone; the image stays unpacked and
// mounts the same tree; images.Check reports the layers as discarded, not
// missing; and a push fetches them again from the registry the image came
// from: mounted within that registry, streamed to another one.
func TestDiscardUnpackedLayers(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, regA.Host, "app", "v1")
	e := newEnv(t)
	name := e.pull(fx.Ref, pull.Options{DiscardUnpackedLayers: true})
	if _, err := e.store.DB.GarbageCollect(e.ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	img, err := e.store.DB.Images().Get(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cs := e.store.DB.ContentStore()
	_, man, err := images.Manifest(e.ctx, cs, img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	have := e.infos()
	for _, l := range man.Layers {
		if _, ok := have[l.Digest]; ok {
			t.Errorf("layer %s still in the store after a discarding pull and a collection", l.Digest)
		}
	}
	storetest.WantTree(t, fx.Tree, storetest.Tree(t, e.ctx, e.store, name))
	sts, err := images.Check(e.ctx, cs, nil, img.Target)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || !sts[0].Complete() || len(sts[0].Missing) != 0 || len(sts[0].Discarded) != len(man.Layers) {
		t.Fatalf("Check after discard = %+v, want complete with %d layers discarded", sts, len(man.Layers))
	}

	for _, to := range []string{regA.Host + "/copy:v1", regB.Host + "/elsewhere:v1"} {
		if _, err := e.push(docker.Options{}, name, to, push.Options{}); err != nil {
			t.Fatalf("push %s of an image whose layers were discarded = %v", to, err)
		}
		fresh := newEnv(t)
		got := fresh.pull(to, pull.Options{})
		storetest.WantTree(t, fx.Tree, storetest.Tree(t, fresh.ctx, fresh.store, got))
	}
}
