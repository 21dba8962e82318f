package pull_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

type env struct {
	t     *testing.T
	ctx   context.Context
	store *wiring.Store
	p     *pull.Puller
}

func newEnv(t *testing.T, opts docker.Options) *env {
	t.Helper()
	st, ctx := storetest.Open(t)
	if opts.RetryBase == 0 {
		opts.RetryBase = 10 * time.Millisecond
	}
	return &env{t: t, ctx: ctx, store: st, p: pull.New(st, docker.NewResolver(opts))}
}

// tree mounts the unpacked image name (host platform) read-only and reads it.
func (e *env) tree(name string) map[string]testutil.TreeEntry {
	e.t.Helper()
	return storetest.Tree(e.t, e.ctx, e.store, name)
}

func (e *env) gc() {
	e.t.Helper()
	if _, err := e.store.DB.GarbageCollect(e.ctx, metadata.GCOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// blobs lists the digests in the content store.
func (e *env) blobs() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	err := e.store.DB.ContentStore().Walk(e.ctx, func(info content.Info) error {
		out[info.Digest] = true
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) snapshotCount() int {
	n := 0
	err := e.store.Snapshotter("").Walk(e.ctx, func(context.Context, snapshots.Info) error { n++; return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func wantTree(t *testing.T, want, got map[string]testutil.TreeEntry) {
	t.Helper()
	storetest.WantTree(t, want, got)
}

func TestPullFixtures(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fixtures := map[string]func(testing.TB, string, string, string) testutil.Fixture{
		"whiteouts":        testutil.PushWhiteoutImage,
		"multiplatform":    testutil.PushMultiPlatform,
		"docker":           testutil.PushDockerSchema2,
		"dockerlist":       testutil.PushDockerManifestList,
		"zstd":             testutil.PushZstd,
		"nondistributable": testutil.PushNonDistributable,
	}
	for name, push := range fixtures {
		t.Run(name, func(t *testing.T) {
			fx := push(t, reg.Host, "fx/"+name, "v1")
			e := newEnv(t, docker.Options{})
			img, err := e.p.Pull(e.ctx, mustRef(t, fx.Ref), pull.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if img.Target.Digest != fx.Root.Digest || img.Target.MediaType != fx.Root.MediaType {
				t.Fatalf("image target = %v, want %v", img.Target, fx.Root)
			}
			ref, _ := reference.Parse(fx.Ref)
			if img.Name != ref.String() {
				t.Fatalf("image name = %q, want %q", img.Name, ref.String())
			}
			wantTree(t, fx.Tree, e.tree(img.Name))
			// Every manifest and config is stored, whatever the platform.
			have := e.blobs()
			for d, b := range fx.Blobs {
				if (strings.Contains(string(b), `"rootfs"`) || strings.Contains(string(b), `"schemaVersion"`)) && !have[d] {
					t.Errorf("manifest or config %s not stored", d)
				}
			}
			// Nothing the image needs is left only to the pull's lease.
			e.gc()
			wantTree(t, fx.Tree, e.tree(img.Name))
		})
	}
}

func TestPullPlatforms(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushMultiPlatform(t, reg.Host, "multi", "v1")
	cs := func(e *env) content.Store { return e.store.DB.ContentStore() }
	layersOf := func(e *env, p ocispec.Platform) []ocispec.Descriptor {
		img, err := e.store.DB.Images().Get(e.ctx, (mustRef(t, fx.Ref)).String())
		if err != nil {
			t.Fatal(err)
		}
		_, man, err := images.Manifest(e.ctx, cs(e), img.Target, images.Only(p))
		if err != nil {
			t.Fatal(err)
		}
		return man.Layers
	}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}

	e := newEnv(t, docker.Options{})
	if _, err := e.p.Pull(e.ctx, mustRef(t, fx.Ref), pull.Options{}); err != nil {
		t.Fatal(err)
	}
	have := e.blobs()
	for _, l := range layersOf(e, images.DefaultPlatform()) {
		if !have[l.Digest] {
			t.Errorf("host layer %s missing", l.Digest)
		}
	}
	for _, l := range layersOf(e, arm64) {
		if have[l.Digest] {
			t.Errorf("arm64 layer %s fetched without being asked for", l.Digest)
		}
	}

	e2 := newEnv(t, docker.Options{})
	if _, err := e2.p.Pull(e2.ctx, mustRef(t, fx.Ref), pull.Options{AllPlatforms: true}); err != nil {
		t.Fatal(err)
	}
	have = e2.blobs()
	for _, l := range append(layersOf(e2, arm64), layersOf(e2, images.DefaultPlatform())...) {
		if !have[l.Digest] {
			t.Errorf("--all-platforms: layer %s missing", l.Digest)
		}
	}
	wantTree(t, fx.Tree, e2.tree(mustRef(t, fx.Ref).String()))

	e3 := newEnv(t, docker.Options{})
	_, err := e3.p.Pull(e3.ctx, mustRef(t, fx.Ref), pull.Options{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("pull of a platform the image lacks = %v; want not found naming it and what there is", err)
	}
	if imgs, _ := e3.store.DB.Images().List(e3.ctx); len(imgs) != 0 {
		t.Fatalf("failed pull left images %v", imgs)
	}
}

func mustRef(t testing.TB, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRepullTransfersNothing: a second pull of a present image asks the
// registry for no blob.
func TestRepullTransfersNothing(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	fx := testutil.PushWhiteoutImage(t, reg.Host, "again", "v1")
	ref := proxy.Host + "/again:v1"
	e := newEnv(t, docker.Options{})
	if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err != nil {
		t.Fatal(err)
	}
	first := proxy.Count(http.MethodGet, "/blobs/")
	if first == 0 {
		t.Fatal("the first pull fetched no blob through the proxy")
	}
	proxy.Reset()
	if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Count(http.MethodGet, "/blobs/"); n != 0 {
		t.Fatalf("re-pull fetched %d blobs: %+v", n, proxy.Requests())
	}
	if n := proxy.Count(http.MethodGet, "/manifests/"); n != 0 {
		t.Fatalf("re-pull fetched %d manifests", n)
	}
	wantTree(t, fx.Tree, e.tree(mustRef(t, ref).String()))
}

func TestPullFaults(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	const size = 4 << 20
	fx := testutil.PushRandomImage(t, reg.Host, "faults", "v1", 3, size)
	ref := proxy.Host + "/faults:v1"
	var layers []ocispec.Descriptor
	{
		e := newEnv(t, docker.Options{})
		if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{NoUnpack: true}); err != nil {
			t.Fatal(err)
		}
		img, _ := e.store.DB.Images().Get(e.ctx, mustRef(t, ref).String())
		_, man, err := images.Manifest(e.ctx, e.store.DB.ContentStore(), img.Target, images.All())
		if err != nil {
			t.Fatal(err)
		}
		layers = man.Layers
	}
	blobPath := "/blobs/" + layers[1].Digest.String()

	t.Run("cut mid-blob resumes with Range", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 1, CutAfter: size / 2})
		e := newEnv(t, docker.Options{})
		if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err != nil {
			t.Fatal(err)
		}
		wantTree(t, fx.Tree, e.tree(mustRef(t, ref).String()))
		reqs := 0
		resumed := false
		for _, r := range proxy.Requests() {
			if strings.Contains(r.Path, blobPath) {
				reqs++
				if r.Range == fmt.Sprintf("bytes=%d-", int64(size/2)) && r.Status == http.StatusPartialContent {
					resumed = true
				}
			}
		}
		if reqs != 2 || !resumed {
			t.Fatalf("want the cut blob fetched twice, the second time from byte %d; requests: %+v", size/2, proxy.Requests())
		}
		if sent := proxy.BytesSent(blobPath); sent > layers[1].Size+64<<10 {
			t.Fatalf("%d bytes sent for a %d-byte blob: the completed part was downloaded again", sent, layers[1].Size)
		}
	})
	t.Run("503 then success", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 2, Status: http.StatusServiceUnavailable})
		e := newEnv(t, docker.Options{})
		if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err != nil {
			t.Fatal(err)
		}
		if n := proxy.Count(http.MethodGet, blobPath); n != 3 {
			t.Fatalf("blob requested %d times, want 3 (two 503s, then success)", n)
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 1, Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}})
		e := newEnv(t, docker.Options{})
		start := time.Now()
		if _, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{}); err != nil {
			t.Fatal(err)
		}
		// Not a timing assertion on speed: the pull must not have retried
		// before the registry's Retry-After.
		if time.Since(start) < time.Second {
			t.Fatalf("pull finished %v after a 429 with Retry-After: 1", time.Since(start))
		}
	})
	t.Run("corrupt blob", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Corrupt: true})
		e := newEnv(t, docker.Options{})
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		if err == nil || !strings.Contains(err.Error(), layers[1].Digest.String()) {
			t.Fatalf("pull of a corrupt blob = %v; want an error naming %s", err, layers[1].Digest)
		}
		if imgs, _ := e.store.DB.Images().List(e.ctx); len(imgs) != 0 {
			t.Fatalf("failed pull left images %v", imgs)
		}
		if e.blobs()[layers[1].Digest] {
			t.Fatal("the corrupt blob became visible")
		}
		e.gc()
		if b := e.blobs(); len(b) != 0 {
			t.Fatalf("after GC a failed pull left blobs %v", b)
		}
		if n := e.snapshotCount(); n != 0 {
			t.Fatalf("after GC a failed pull left %d snapshots", n)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Delay: 30 * time.Second})
		e := newEnv(t, docker.Options{})
		ctx, cancel := context.WithCancel(e.ctx)
		go func() {
			for proxy.Count(http.MethodGet, blobPath) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
		start := time.Now()
		_, err := e.p.Pull(ctx, mustRef(t, ref), pull.Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled pull = %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("cancelled pull took %v to stop", d)
		}
		if imgs, _ := e.store.DB.Images().List(e.ctx); len(imgs) != 0 {
			t.Fatalf("cancelled pull left images %v", imgs)
		}
		e.gc()
		if n := e.snapshotCount(); n != 0 {
			t.Fatalf("after GC a cancelled pull left %d snapshots", n)
		}
	})
}

// TestPullAttestations: --all-platforms also fetches BuildKit's attestation
// manifests' blobs; a host-platform pull does not need them.
func TestPullAttestations(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	layer := tartest.Gzip(tartest.Tar(tartest.File("etc/hostname", "att")))
	diffID := digest.FromBytes(tartest.Tar(tartest.File("etc/hostname", "att")))
	img := testutil.PushImage(t, reg.Host, "att", "", "linux", images.DefaultPlatform().Architecture,
		[]testutil.Layer{{Data: layer}}, []digest.Digest{diffID})
	sbom := testutil.PushBlob(t, reg.Host, "att", []byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`), "application/vnd.in-toto+json")
	cfg := testutil.PushBlob(t, reg.Host, "att", []byte(`{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":["`+sbom.Digest.String()+`"]}}`), ocispec.MediaTypeImageConfig)
	att := testutil.PushManifest(t, reg.Host, "att", "", ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispec.Descriptor{sbom}}, ocispec.MediaTypeImageManifest)
	att.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": img.Digest.String()}
	testutil.PushIndex(t, reg.Host, "att", "v1", img, att)

	e := newEnv(t, docker.Options{})
	if _, err := e.p.Pull(e.ctx, mustRef(t, reg.Host+"/att:v1"), pull.Options{}); err != nil {
		t.Fatal(err)
	}
	if e.blobs()[sbom.Digest] {
		t.Fatal("a host-platform pull fetched the attestation's blob")
	}
	if !e.blobs()[att.Digest] {
		t.Fatal("the attestation manifest itself was not stored")
	}
	if _, err := e.p.Pull(e.ctx, mustRef(t, reg.Host+"/att:v1"), pull.Options{AllPlatforms: true}); err != nil {
		t.Fatal(err)
	}
	if !e.blobs()[sbom.Digest] {
		t.Fatal("--all-platforms did not fetch the attestation's blob")
	}
}

// TestConcurrentPullsShareDownloads: pulls of one image at the same time
// through one Puller (as a daemon serves them) fetch each blob once, and
// all succeed with the same tree.
func TestConcurrentPullsShareDownloads(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	fx := testutil.PushRandomImage(t, reg.Host, "shared", "v1", 3, 2<<20)
	// Slow the blobs a little so that the pulls overlap.
	proxy.Add(testutil.Fault{Method: http.MethodGet, Path: "/blobs/", Delay: 200 * time.Millisecond})
	e := newEnv(t, docker.Options{})
	ref := proxy.Host + "/shared:v1"
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for d := range fx.Blobs {
		if c := proxy.Count(http.MethodGet, "/blobs/"+d.String()); c > 1 {
			t.Errorf("blob %s fetched %d times by %d concurrent pulls", d, c, n)
		}
	}
	wantTree(t, fx.Tree, e.tree(mustRef(t, ref).String()))
}
