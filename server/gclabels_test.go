package server_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
)

// TestImageWritersLabelForGC (issue 12, item 1): GC follows labels only,
// so every path that writes images must set the labels GC needs: strata's
// pull, strata's import, and ctr's pull through the content API (ctr sets
// them itself). After a collection each image is still complete and still
// mounts its tree.
func TestImageWritersLabelForGC(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "gc/labels", "v1")
	d := servertest.Start(t)
	inNS := func(ns string) context.Context { return namespaces.WithNamespace(context.Background(), ns) }

	pulled := storetest.Pull(t, inNS("pull"), d.Store, fx.Ref, pull.Options{})
	var archive bytes.Buffer
	if err := ocilayout.Export(inNS("pull"), &archive, d.Store.DB.ContentStore(), []images.Image{pulled}, ocilayout.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	imported, err := ocilayout.Import(inNS("import"), &archive, d.Store, ocilayout.ImportOptions{})
	if err != nil || len(imported) != 1 {
		t.Fatalf("import = %v, %v", imported, err)
	}
	// As strata images import does (jobs): unpack what was imported.
	if _, err := pull.UnpackWith(inNS("import"), d.Store, imported[0].Target, pull.Options{}); err != nil {
		t.Fatal(err)
	}
	d.Ctr(t, "ctr", "images", "pull", "--plain-http", fx.Ref)

	if _, err := d.Store.DB.GarbageCollect(context.Background(), metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for ns, name := range map[string]string{"pull": pulled.Name, "import": imported[0].Name, "ctr": fx.Ref} {
		ctx := inNS(ns)
		img, err := d.Store.DB.Images().Get(ctx, name)
		if err != nil {
			t.Fatalf("%s: image %s after GC: %v", ns, name, err)
		}
		sts, err := images.Check(ctx, d.Store.DB.ContentStore(), nil, img.Target)
		if err != nil || len(sts) != 1 || !sts[0].Complete() {
			t.Fatalf("%s: Check(%s) after GC = %+v, %v; want complete: the writer did not label what GC needs", ns, name, sts, err)
		}
		storetest.WantTree(t, fx.Tree, storetest.Tree(t, ctx, d.Store, name))
	}
}
