package pull_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
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
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
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

// ingests lists the partial downloads of blobs containing sub in their
// ref, from the metadata and from the disk.
func (e *env) ingests(sub string) []string {
	e.t.Helper()
	var out []string
	sts, err := e.store.DB.ContentStore().ListStatuses(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, st := range sts {
		if strings.Contains(st.Ref, sub) {
			out = append(out, "record "+st.Ref)
		}
	}
	sts, err = e.store.Blobs.ListStatuses(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, st := range sts {
		if strings.Contains(st.Ref, sub) {
			out = append(out, "data "+st.Ref)
		}
	}
	return out
}

// blobRequests lists the requests for path: their Range headers ("" for
// a full GET).
func blobRequests(p *testutil.Proxy, path string) []string {
	var out []string
	for _, r := range p.Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, path) {
			out = append(out, r.Range)
		}
	}
	return out
}

// TestPullRefetchesCorruptIngest: a partial download holding bad bytes (a
// killed pull's) is resumed, found wrong at commit, dropped and fetched
// once more from the start, in the same pull (issue 11, item 6).
func TestPullRefetchesCorruptIngest(t *testing.T) {
	for _, tc := range []struct {
		name string
		junk func(size int64) int64 // bytes of junk a killed pull left
		want func(junk int64) []string
	}{
		// Resumed at its end, fails its digest, fetched once more whole.
		{"partial", func(size int64) int64 { return size / 2 },
			func(junk int64) []string { return []string{fmt.Sprintf("bytes=%d-", junk), ""} }},
		// Full length but wrong: nothing to resume, fetched whole at once.
		{"full length", func(size int64) int64 { return size },
			func(int64) []string { return []string{""} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
			proxy := testutil.StartProxy(t, reg.Host)
			fx := testutil.PushRandomImage(t, reg.Host, "corrupt-ingest", "v1", 2, 1<<20)
			ref := proxy.Host + "/corrupt-ingest:v1"
			l := fixtureLayers(t, fx)[1]
			blobPath := "/blobs/" + l.Digest.String()

			e := newEnv(t, docker.Options{})
			w, err := e.store.DB.ContentStore().Writer(e.ctx, content.WithRef("pull-"+l.Digest.String()), content.WithDescriptor(l))
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, tc.junk(l.Size))
			if _, err := w.Write(junk); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			img, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			if err != nil {
				t.Fatalf("pull over a corrupt partial download = %v", err)
			}
			wantTree(t, fx.Tree, e.tree(img.Name))
			if got, want := blobRequests(proxy, blobPath), tc.want(int64(len(junk))); !slices.Equal(got, want) {
				t.Fatalf("requests for the blob (Range) = %q, want %q", got, want)
			}
			if left := e.ingests(""); len(left) != 0 {
				t.Fatalf("ingests left after the pull: %v", left)
			}
		})
	}
}

// TestPullCorruptBlobDropsIngest: a registry serving corrupt bytes fails
// the pull naming the blob, fresh or resumed, and leaves no partial
// download for the next pull to trip on (issue 11, item 6).
func TestPullCorruptBlobDropsIngest(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	fx := testutil.PushRandomImage(t, reg.Host, "corrupt-blob", "v1", 2, 1<<20)
	ref := proxy.Host + "/corrupt-blob:v1"
	l := fixtureLayers(t, fx)[1]
	blobPath := "/blobs/" + l.Digest.String()

	for _, tc := range []struct {
		name string
		cut  bool // a first request cut short leaves a partial download
		want []string
	}{
		{"fresh", false, []string{""}},
		{"resumed", true, []string{fmt.Sprintf("bytes=%d-", l.Size/2), ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			if tc.cut {
				proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 1, CutAfter: l.Size / 2})
				// Make the first attempt end with the partial download
				// kept: a fault that the fetch does not resume.
				proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 1, Status: http.StatusForbidden})
			}
			e := newEnv(t, docker.Options{})
			if tc.cut {
				if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err == nil {
					t.Fatal("pull through a cut and a 403 succeeded")
				}
				if left := e.ingests(l.Digest.String()); len(left) != 2 {
					t.Fatalf("the cut pull left ingests %v, want one (record and data)", left)
				}
				proxy.Reset()
			}
			proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Corrupt: true})
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			if err == nil || !strings.Contains(err.Error(), l.Digest.String()) {
				t.Fatalf("pull of a corrupt blob = %v; want an error naming %s", err, l.Digest)
			}
			t.Logf("pull: %v", err)
			if got := blobRequests(proxy, blobPath); !slices.Equal(got, tc.want) {
				t.Fatalf("requests for the blob (Range) = %q, want %q", got, tc.want)
			}
			// Other layers' downloads, cancelled by the failure, stay
			// resumable; the corrupt one must not.
			if left := e.ingests(l.Digest.String()); len(left) != 0 {
				t.Fatalf("ingests left after a corrupt download: %v", left)
			}
			e.wantFailedClean()
		})
	}
}
