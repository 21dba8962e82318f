package pull_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/internal/testutil"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
)

// fixtureLayers returns the layers of a single-manifest fixture.
func fixtureLayers(t *testing.T, fx testutil.Fixture) []ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[fx.Root.Digest], &m); err != nil {
		t.Fatalf("fixture manifest %s: %v", fx.Root.Digest, err)
	}
	return m.Layers
}

// wantFailedClean checks what a failed pull leaves: no image, and after a
// collection no blob and no snapshot.
func (e *env) wantFailedClean() {
	e.t.Helper()
	if imgs, _ := e.store.DB.Images().List(e.ctx); len(imgs) != 0 {
		e.t.Fatalf("failed pull left images %v", imgs)
	}
	e.gc()
	if b := e.blobs(); len(b) != 0 {
		e.t.Fatalf("after GC a failed pull left blobs %v", b)
	}
	if n := e.snapshotCount(); n != 0 {
		e.t.Fatalf("after GC a failed pull left %d snapshots", n)
	}
}

// TestPullWrongLength: a registry that serves a blob longer than its
// descriptor (announced in Content-Length, or found after the last byte
// of a chunked body, or in the Content-Length of a resume) fails the pull
// with an error naming the blob and both sizes (issue 11, item 3).
func TestPullWrongLength(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	const size = 1 << 20
	fx := testutil.PushRandomImage(t, reg.Host, "length", "v1", 2, size)
	ref := proxy.Host + "/length:v1"
	l := fixtureLayers(t, fx)[1]
	blobPath := "/blobs/" + l.Digest.String()
	extra := []byte("sixteen bytes!!!")
	long := l.Size + int64(len(extra))

	for _, tc := range []struct {
		name   string
		faults []testutil.Fault
		sizes  []int64 // what the error must name besides the digest
	}{
		{"Content-Length longer", []testutil.Fault{{Method: http.MethodGet, Path: blobPath, Append: extra}}, []int64{long, l.Size}},
		{"chunked body longer", []testutil.Fault{{Method: http.MethodGet, Path: blobPath, Append: extra, NoLength: true}}, []int64{long, l.Size}},
		{"resume Content-Length longer", []testutil.Fault{
			{Method: http.MethodGet, Path: blobPath, Times: 1, CutAfter: l.Size / 2},
			{Method: http.MethodGet, Path: blobPath, Times: 1, Append: extra},
		}, []int64{l.Size - l.Size/2 + int64(len(extra)), l.Size, l.Size - l.Size/2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			for _, f := range tc.faults {
				proxy.Add(f)
			}
			e := newEnv(t, docker.Options{})
			_, err := e.p.Pull(e.ctx, ref, pull.Options{})
			if err == nil {
				t.Fatalf("pull of a blob served longer than its descriptor succeeded; requests: %+v", proxy.Requests())
			}
			t.Logf("pull: %v", err)
			msg := err.Error()
			if !strings.Contains(msg, l.Digest.String()) {
				t.Errorf("error %q does not name blob %s", msg, l.Digest)
			}
			for _, n := range tc.sizes {
				if !strings.Contains(msg, fmt.Sprint(n)) {
					t.Errorf("error %q does not name size %d", msg, n)
				}
			}
			e.wantFailedClean()
		})
	}
}
