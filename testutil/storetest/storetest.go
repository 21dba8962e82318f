// Package storetest opens real strata stores for tests of the pipelines
// (pull, push, the registry client) and reads back what they unpacked.
package storetest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/wiring"
)

// Open opens a store in a fresh temporary root and returns it with a
// context in namespace "default" that ends with the test (or after 3
// minutes). The store is closed, unmounted and removed at cleanup. The
// pipelines unpack into overlayfs: the test fails unless run as root.
func Open(tb testing.TB) (*wiring.Store, context.Context) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test unpacks into overlayfs snapshots and needs root")
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), 3*time.Minute)
	tb.Cleanup(cancel)
	root, err := os.MkdirTemp(os.Getenv("STRATA_BENCH_DIR"), "store")
	if err != nil {
		tb.Fatal(err)
	}
	return OpenAt(tb, root), ctx
}

// OpenAt opens a store at root, closed, unmounted and removed at cleanup.
func OpenAt(tb testing.TB, root string) *wiring.Store {
	tb.Helper()
	st, err := wiring.Open(context.Background(), wiring.Config{Root: root})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
		if err := mount.UnmountUnder(root); err != nil {
			tb.Error(err)
		}
		os.RemoveAll(root)
	})
	return st
}

// Tree mounts the unpacked image name (host platform, default
// snapshotter) read-only and reads its tree.
func Tree(tb testing.TB, ctx context.Context, st *wiring.Store, name string) map[string]testutil.TreeEntry {
	tb.Helper()
	img, err := st.DB.Images().Get(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	cs := st.DB.ContentStore()
	_, man, err := images.Manifest(ctx, cs, img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		tb.Fatal(err)
	}
	diffIDs, err := images.RootFS(ctx, cs, man)
	if err != nil {
		tb.Fatal(err)
	}
	chains := images.ChainIDs(diffIDs)
	sn := st.Snapshotter("")
	key := "view-" + tb.Name()
	mounts, err := sn.View(ctx, key, chains[len(chains)-1].String())
	if err != nil {
		tb.Fatal(err)
	}
	defer sn.Remove(ctx, key)
	var tree map[string]testutil.TreeEntry
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		tree = testutil.ReadTree(tb, root)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tree
}

// WantTree fails the test when got differs from want, listing how.
func WantTree(tb testing.TB, want, got map[string]testutil.TreeEntry) {
	tb.Helper()
	if d := testutil.DiffTrees(want, got); len(d) > 0 {
		tb.Fatalf("unpacked tree differs from the fixture:\n%s", strings.Join(d, "\n"))
	}
}

// Pull pulls ref into st (from a test registry on 127.0.0.1) and returns
// the image record; the test fails if the pull does.
func Pull(tb testing.TB, ctx context.Context, st *wiring.Store, ref string, o pull.Options) images.Image {
	tb.Helper()
	r, err := reference.Parse(ref)
	if err != nil {
		tb.Fatal(err)
	}
	img, err := pull.New(st, docker.NewResolver(docker.Options{})).Pull(ctx, r, o)
	if err != nil {
		tb.Fatalf("pull %s: %v", ref, err)
	}
	return img
}
