package pull_test

import (
	"fmt"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// TestPullsDuringGC (issue 11, item 9): collections run back to back while
// several pulls run at once, of images whose layers (blobs and snapshots)
// are left over from a deleted image, so each is garbage until a pull holds
// it. Every pull succeeds, and every image it records is complete
// (images.Check) and mounts with the tree its layers make, before and after
// one more collection.
func TestPullsDuringGC(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	p := images.DefaultPlatform()
	layer := func(name string, n int) []byte {
		var es []tartest.Entry
		es = append(es, tartest.Dir(name))
		for i := range n {
			es = append(es, tartest.File(fmt.Sprintf("%s/f%d", name, i), fmt.Sprintf("%s file %d\n", name, i)))
		}
		return tartest.Tar(es...)
	}
	push := func(tag string, tars ...[]byte) (string, map[string]testutil.TreeEntry) {
		t.Helper()
		var ls []testutil.Layer
		var diffIDs []digest.Digest
		for _, tr := range tars {
			ls = append(ls, testutil.Layer{Data: tartest.Gzip(tr)})
			diffIDs = append(diffIDs, digest.FromBytes(tr))
		}
		testutil.PushImage(t, reg.Host, "race", tag, p.OS, p.Architecture, ls, diffIDs)
		return reg.Host + "/race:" + tag, testutil.ComputeTree(tars)
	}
	base, mid := layer("base", 20), layer("mid", 5)
	deletedRef, _ := push("deleted", base, mid)
	type want struct {
		ref  string
		tree map[string]testutil.TreeEntry
	}
	var wants []want
	for i := range 4 {
		tars := [][]byte{base, layer(fmt.Sprintf("top%d", i), 3)}
		if i%2 == 1 {
			tars = [][]byte{base, mid, layer(fmt.Sprintf("top%d", i), 3)}
		}
		ref, tree := push(fmt.Sprintf("p%d", i), tars...)
		wants = append(wants, want{ref, tree})
	}

	e := newEnv(t, docker.Options{})
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		// What the deleted image leaves is garbage when the pulls start.
		img, err := e.p.Pull(e.ctx, mustRef(t, deletedRef), pull.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.DB.Images().Delete(e.ctx, img.Name); err != nil {
			t.Fatal(err)
		}

		stop := make(chan struct{})
		var gcs sync.WaitGroup
		gcs.Add(1)
		collections := 0
		go func() {
			defer gcs.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.store.DB.GarbageCollect(e.ctx, metadata.GCOptions{}); err != nil {
					t.Errorf("GC during pulls: %v", err)
					return
				}
				collections++
			}
		}()
		pulled := make([]images.Image, len(wants))
		errs := make([]error, len(wants))
		var pulls sync.WaitGroup
		for i, w := range wants {
			ref := mustRef(t, w.ref)
			pulls.Add(1)
			go func() {
				defer pulls.Done()
				pulled[i], errs[i] = e.p.Pull(e.ctx, ref, pull.Options{})
			}()
		}
		pulls.Wait()
		close(stop)
		gcs.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: pull %s during GC: %v", round, wants[i].ref, err)
			}
		}
		check := func(when string) {
			t.Helper()
			for i, img := range pulled {
				st, err := images.Check(e.ctx, e.store.DB.ContentStore(), nil, img.Target)
				if err != nil {
					t.Fatalf("round %d, %s: Check(%s) = %v", round, when, img.Name, err)
				}
				if len(st) != 1 || !st[0].Complete() {
					t.Fatalf("round %d, %s: image %s is incomplete: %+v", round, when, img.Name, st)
				}
				wantTree(t, wants[i].tree, e.tree(img.Name))
			}
		}
		check("after the pulls")
		e.gc()
		check("after one more collection")
		t.Logf("round %d: %d collections during the pulls", round, collections)
		for _, img := range pulled {
			if err := e.store.DB.Images().Delete(e.ctx, img.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
