package client_test

import (
	"context"
	"slices"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/unpack"
)

// TestPullThroughClientStore runs the pull pipeline in this process over
// the daemon's client-side stores (content, images, leases and overlayfs
// snapshots through the socket), not over a store opened here: the image
// it records is complete (images.Check) and its tree is the fixture's,
// also after a collection; the same manifest then unpacks through the
// client into native (no rebase), and a jobs.Runner over the client
// store runs the unpack job and refuses the jobs only a local store runs.
func TestPullThroughClientStore(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "client/whiteouts", "v1")
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")

	cs, err := client.NewStore(ctx, d.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cs.Info().Rebase, "overlayfs") {
		t.Fatalf("daemon's store info = %+v, want overlayfs among the snapshotters that rebase", cs.Info())
	}
	if _, sn, err := cs.ResolveSnapshotter("overlayfs"); err != nil || !snapshots.CanRebase(sn) {
		t.Fatalf("ResolveSnapshotter(overlayfs) = %v, %v; want a client snapshotter that rebases", sn, err)
	}
	if _, _, err := cs.ResolveSnapshotter("btrfs"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ResolveSnapshotter(btrfs) = %v, want errdefs.ErrInvalidArgument", err)
	}

	ref, err := reference.Parse(fx.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := pull.New(cs, docker.NewResolver(docker.Options{})).Pull(ctx, ref, pull.Options{Snapshotter: "overlayfs"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != fx.Root.Digest {
		t.Fatalf("image target = %v, want %v", img.Target, fx.Root)
	}
	check := func(when string) {
		t.Helper()
		sts, err := images.Check(ctx, cs.Content(), nil, img.Target)
		if err != nil || len(sts) != 1 || !sts[0].Complete() {
			t.Fatalf("%s: Check(%s) = %+v, %v; want complete", when, img.Name, sts, err)
		}
		storetest.WantTree(t, fx.Tree, storetest.Tree(t, ctx, d.Store, img.Name))
	}
	check("after the pull")
	// Nothing the image needs is left only to the pull's lease.
	if _, err := d.Store.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	check("after a collection")

	desc, _, err := images.Manifest(ctx, cs.Content(), img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	top, err := unpack.Manifest(ctx, cs, desc, unpack.Options{Snapshotter: "native"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.Snapshotter("native").Stat(ctx, top.String()); err != nil {
		t.Fatalf("native snapshot %s after an unpack through the client: %v", top, err)
	}

	runner := jobs.NewRunner(cs, jobs.Defaults{})
	res, err := runner.Run(ctx, jobs.Request{Unpack: &jobs.UnpackRequest{Manifest: desc, Snapshotter: "overlayfs"}}, jobs.Env{})
	if err != nil || res.ChainID != top {
		t.Fatalf("unpack job through the client store = %+v, %v; want chain %s", res, err, top)
	}
	if _, err := runner.Run(ctx, jobs.Request{GC: &jobs.GCRequest{}}, jobs.Env{}); !errdefs.IsNotImplemented(err) {
		t.Fatalf("gc job through the client store = %v, want errdefs.ErrNotImplemented", err)
	}
}
