package pull_test

import (
	"runtime"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// TestPullHardLinkToLowerLayer pulls an image whose upper layers hard-link
// files that only lower layers have (issue 11, item 11). On overlayfs the
// layers are unpacked in parallel, each before its parents exist: the
// links are made once the parents are committed, and the image has the
// tree that the layers make natively.
func TestPullHardLinkToLowerLayer(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	layers := [][]byte{
		tartest.Tar(
			tartest.Dir("usr/"), tartest.Dir("usr/lib/"),
			tartest.Entry{Name: "usr/lib/libc.so", Body: "libc", Mode: 0o755},
			tartest.Dir("etc/"), tartest.File("etc/passwd", "root"),
		),
		tartest.Tar(
			tartest.Link("lib/libc-link", "usr/lib/libc.so"),
			tartest.Link("etc/passwd-old", "etc/passwd"),
			tartest.File("etc/passwd", "root and user"),
		),
		tartest.Tar(tartest.Link("bin/libc3", "usr/lib/libc.so")),
	}
	var ls []testutil.Layer
	var diffIDs []digest.Digest
	for _, l := range layers {
		ls = append(ls, testutil.Layer{Data: tartest.Gzip(l)})
		diffIDs = append(diffIDs, digest.FromBytes(l))
	}
	testutil.PushImage(t, reg.Host, "hardlinks", "v1", "linux", runtime.GOARCH, ls, diffIDs)
	e := newEnv(t, docker.Options{})
	img, err := e.p.Pull(e.ctx, mustRef(t, reg.Host+"/hardlinks:v1"), pull.Options{})
	if err != nil {
		t.Fatalf("pull of layers hard-linking lower layers' files = %v", err)
	}
	wantTree(t, testutil.ComputeTree(layers), e.tree(img.Name))
}
