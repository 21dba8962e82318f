package pull_test

import (
	"errors"
	"io"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// TestRefetchVerifies: a layer discarded after unpack and read again from
// its registry for an export comes back whole when the registry serves its
// bytes, and fails with DataLoss, naming it, when the registry serves other
// bytes under its digest: they must not go into an archive.
func TestRefetchVerifies(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	fx := testutil.PushRandomImage(t, reg.Host, "refetch", "v1", 1, 1<<20)
	e := newEnv(t, docker.Options{})
	img, err := e.p.Pull(e.ctx, mustRef(t, proxy.Host+"/refetch:v1"), pull.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := e.store.DB.ContentStore()
	if _, err := images.DiscardLayers(e.ctx, cs, img.Target); err != nil {
		t.Fatal(err)
	}
	e.gc()
	l := fixtureLayers(t, fx)[0]
	if _, err := cs.Info(e.ctx, l.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("layer after discard and GC: %v, want not found", err)
	}

	read := func() error {
		p, err := pull.Refetcher(e.ctx, cs, docker.NewResolver(docker.Options{}), []ocispec.Descriptor{img.Target})
		if err != nil {
			t.Fatal(err)
		}
		ra, err := p.ReaderAt(e.ctx, l)
		if err != nil {
			return err
		}
		defer ra.Close()
		_, err = io.Copy(io.Discard, io.NewSectionReader(ra, 0, ra.Size()))
		return err
	}
	if err := read(); err != nil {
		t.Fatalf("layer read again from its registry: %v", err)
	}
	proxy.Add(testutil.Fault{Method: "GET", Path: "/blobs/" + l.Digest.String(), Corrupt: true})
	if err := read(); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("layer served corrupt = %v, want data loss", err)
	}
}
