package docker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// TestResolve resolves and pulls by tag, by digest and by both, against a
// real registry, and fails to on references the registry lacks.
func TestResolve(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	a := testutil.PushWhiteoutImage(t, reg.Host, "resolve/app", "a")
	b := testutil.PushDockerSchema2(t, reg.Host, "resolve/app", "b")
	repo := reg.Host + "/resolve/app"

	for _, tc := range []struct {
		name string
		ref  string
		want testutil.Fixture
	}{
		{name: "tag", ref: repo + ":a", want: a},
		{name: "digest", ref: repo + "@" + b.Root.Digest.String(), want: b},
		{name: "tag and digest: the digest wins", ref: repo + ":a@" + b.Root.Digest.String(), want: b},
		{name: "digest with a tag the registry lacks", ref: repo + ":gone@" + b.Root.Digest.String(), want: b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, docker.Options{})
			r, err := e.r.Repository(mustRef(t, tc.ref))
			if err != nil {
				t.Fatal(err)
			}
			desc, err := r.Resolve(e.ctx)
			if err != nil {
				t.Fatalf("Resolve(%q) = %v", tc.ref, err)
			}
			if desc.Digest != tc.want.Root.Digest || desc.MediaType != tc.want.Root.MediaType || desc.Size != tc.want.Root.Size {
				t.Fatalf("Resolve(%q) = %+v, want %+v", tc.ref, desc, tc.want.Root)
			}
			e.pullImage(tc.ref, tc.want)
		})
	}

	for _, tc := range []struct {
		name string
		ref  string
	}{
		{name: "unknown tag", ref: repo + ":nope"},
		{name: "unknown digest", ref: repo + "@" + digest.FromString("no such manifest").String()},
		{name: "unknown repository", ref: reg.Host + "/resolve/none:a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, docker.Options{})
			_, err := e.p.Pull(e.ctx, mustRef(t, tc.ref), pull.Options{})
			t.Logf("Pull(%q) = %v", tc.ref, err)
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), mustRef(t, tc.ref).String()) {
				t.Fatalf("Pull(%q) = %v, want ErrNotFound naming the reference", tc.ref, err)
			}
			e.noImages()
		})
	}
}

// TestSchema1 pulls Docker schema 1 manifests, which strata refuses with a
// clear message. The registry refuses to store unsigned schema 1
// manifests (and distribution 2.8 any schema 1 by default), so a test
// server answers them, typed as registries did, or as a plain JSON file.
func TestSchema1(t *testing.T) {
	manifest := []byte(`{"schemaVersion":1,"name":"old/app","tag":"latest","architecture":"amd64",` +
		`"fsLayers":[{"blobSum":"` + digest.FromString("layer").String() + `"}],"history":[{"v1Compatibility":"{}"}]}`)
	types := map[string]string{
		"signed":   "application/vnd.docker.distribution.manifest.v1+prettyjws",
		"unsigned": "application/vnd.docker.distribution.manifest.v1+json",
		"untyped":  "application/json",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, ok := strings.CutPrefix(r.URL.Path, "/v2/old/app/manifests/")
		mt, known := types[tag]
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", mt)
		if tag != "untyped" {
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(manifest).String())
			w.Header().Set("Content-Length", strconv.Itoa(len(manifest)))
		} else if r.Method == http.MethodHead {
			// A file server's HEAD: no digest, so the client must GET.
			return
		}
		if r.Method == http.MethodGet {
			w.Write(manifest)
		}
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()

	for tag := range types {
		t.Run(tag, func(t *testing.T) {
			e := newEnv(t, docker.Options{PlainHTTP: true})
			ref := host + "/old/app:" + tag
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			t.Logf("Pull(%q) = %v", ref, err)
			if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "schema 1") || !strings.Contains(err.Error(), ref) {
				t.Fatalf("Pull(%q) = %v, want ErrNotImplemented naming the reference and schema 1", ref, err)
			}
			e.noImages()
		})
	}
}

// TestManifestSizeLimit offers manifests larger than images.MaxManifestSize:
// announced by the registry's headers, by an index's descriptor, or only
// found while reading an endless body. Each pull fails with
// ErrInvalidArgument naming the limit, having read at most the limit (and
// a byte) of it.
func TestManifestSizeLimit(t *testing.T) {
	limit := strconv.Itoa(images.MaxManifestSize)
	wantLimitError := func(t *testing.T, what string, err error) {
		t.Helper()
		t.Logf("%s = %v", what, err)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), limit) {
			t.Fatalf("%s = %v, want ErrInvalidArgument naming the limit %s", what, err, limit)
		}
	}

	t.Run("index lists a child larger than the limit", func(t *testing.T) {
		// The registry refuses to store a manifest over 4 MiB, but not an
		// index whose descriptor claims one.
		reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
		proxy := testutil.StartProxy(t, reg.Host)
		fx := testutil.PushDockerSchema2(t, reg.Host, "limits/app", "v1")
		child := fx.Root
		child.Size = images.MaxManifestSize + 1
		child.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
		testutil.PushIndex(t, reg.Host, "limits/app", "big", child)
		e := newEnv(t, docker.Options{PlainHTTP: true})
		ref := proxy.Host + "/limits/app:big"
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		wantLimitError(t, fmt.Sprintf("Pull(%q)", ref), err)
		if n := proxy.Count(http.MethodGet, "/manifests/"+child.Digest.String()); n != 0 {
			t.Fatalf("the oversized manifest was asked for %d times", n)
		}
		e.noImages()
	})

	for _, tag := range []string{"announced", "long", "endless"} {
		t.Run(tag, func(t *testing.T) {
			srv, written := startBigManifestServer(t)
			e := newEnv(t, docker.Options{PlainHTTP: true})
			ref := srv.Listener.Addr().String() + "/big/app:" + tag
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			wantLimitError(t, fmt.Sprintf("Pull(%q)", ref), err)
			e.noImages()
			// Close waits for the handler, which ends when its writes fail
			// on the connection the client dropped (or Close drops).
			srv.Close()
			// slack bounds what socket buffers and the client's read
			// buffer may hold beyond what the client read.
			const slack = 32 << 20
			if n := written.Load(); n > images.MaxManifestSize+1+slack {
				t.Fatalf("the server sent %d bytes of a manifest over the limit of %s before the client stopped reading", n, limit)
			}
		})
	}
}

// startBigManifestServer serves manifests of big/app larger than the
// limit: "announced" says its size and digest in HEAD's headers, "long"
// only in GET's Content-Length, "endless" nowhere (its chunked body stops
// at 1 GiB, which no correct client reads). It counts the body bytes
// written.
func startBigManifestServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	const big = images.MaxManifestSize + 1<<20
	written := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, ok := strings.CutPrefix(r.URL.Path, "/v2/big/app/manifests/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		var total int64
		switch tag {
		case "announced":
			w.Header().Set("Docker-Content-Digest", digest.FromString("big").String())
			w.Header().Set("Content-Length", strconv.Itoa(big))
			total = big
		case "long":
			if r.Method == http.MethodGet {
				w.Header().Set("Content-Length", strconv.Itoa(big))
			}
			total = big
		case "endless":
			total = 1 << 30
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			return
		}
		// A JSON manifest that never ends its annotation.
		chunk := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","annotations":{"padding":"`)
		padding := []byte(strings.Repeat("x", 32<<10))
		for n := int64(0); n < total; chunk = padding {
			p := chunk[:min(int64(len(chunk)), total-n)]
			if _, err := w.Write(p); err != nil {
				return
			}
			n += int64(len(p))
			written.Add(int64(len(p)))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, written
}
