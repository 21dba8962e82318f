package push_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/push"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

const labelSource = "containerd.io/distribution.source."

// env is a store with images pulled into it by the real pull pipeline.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *wiring.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, ctx := storetest.Open(t)
	return &env{t: t, ctx: ctx, store: st}
}

// resolver returns a registry client for the test registries. They talk
// plain HTTP on 127.0.0.1: the client's loopback fallback (https first,
// then http) is what runs, under concurrent uploads, as for users.
func resolver(opts docker.Options) *docker.Resolver {
	if opts.RetryBase == 0 {
		opts.RetryBase = 10 * time.Millisecond
	}
	return docker.NewResolver(opts)
}

// pull pulls ref anonymously and returns the image's name.
func (e *env) pull(ref string, o pull.Options) string {
	e.t.Helper()
	return storetest.Pull(e.t, e.ctx, e.store, ref, o).Name
}

func (e *env) push(opts docker.Options, local, ref string, o push.Options) (ocispec.Descriptor, error) {
	r, err := reference.Parse(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return push.New(e.store, resolver(opts)).Push(e.ctx, local, r, o)
}

// infos returns the content store's blobs with their labels.
func (e *env) infos() map[digest.Digest]content.Info {
	e.t.Helper()
	out := map[digest.Digest]content.Info{}
	err := e.store.DB.ContentStore().Walk(e.ctx, func(info content.Info) error {
		out[info.Digest] = info
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// get GETs or HEADs a registry URL path, with basic auth when user is set.
func get(t *testing.T, method, host, path, user, password string, accept ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+host+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if len(accept) > 0 {
		req.Header.Set("Accept", strings.Join(accept, ", "))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s/%s: %v", method, host, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

var manifestTypes = []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest}

// registry is where a round trip is checked: a host and, for a registry
// with basic auth, a user.
type registry struct{ host, user, password string }

// wantRoundTrip checks that repo:tag on reg is the fixture: the tag names
// its root digest, and every manifest and blob of the fixture (but those
// in except) comes back byte for byte.
func wantRoundTrip(t *testing.T, reg registry, repo, tag string, fx testutil.Fixture, except ...digest.Digest) {
	t.Helper()
	status, body, hdr := get(t, http.MethodGet, reg.host, repo+"/manifests/"+tag, reg.user, reg.password, manifestTypes...)
	if status != http.StatusOK {
		t.Fatalf("GET %s/%s:%s: %d", reg.host, repo, tag, status)
	}
	if d := digest.FromBytes(body); d != fx.Root.Digest || hdr.Get("Docker-Content-Digest") != fx.Root.Digest.String() {
		t.Fatalf("%s/%s:%s is %s (header %s), want the fixture's root %s", reg.host, repo, tag, d, hdr.Get("Docker-Content-Digest"), fx.Root.Digest)
	}
	if ct := hdr.Get("Content-Type"); ct != fx.Root.MediaType {
		t.Fatalf("%s/%s:%s served as %q, want %q", reg.host, repo, tag, ct, fx.Root.MediaType)
	}
	manifests := manifestDigests(t, fx, fx.Root.Digest)
	for d, want := range fx.Blobs {
		if slices.Contains(except, d) {
			continue
		}
		kind := "blobs"
		if manifests[d] {
			kind = "manifests"
		}
		status, got, _ := get(t, http.MethodGet, reg.host, repo+"/"+kind+"/"+d.String(), reg.user, reg.password, manifestTypes...)
		if status != http.StatusOK {
			t.Errorf("GET %s/%s/%s/%s: %d", reg.host, repo, kind, d, status)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s %s on %s/%s: %d bytes of digest %s, want the fixture's %d bytes", kind, d, reg.host, repo, len(got), digest.FromBytes(got), len(want))
		}
	}
}

// manifestDigests returns the digests of the manifests and indexes under
// root in the fixture.
func manifestDigests(t *testing.T, fx testutil.Fixture, root digest.Digest) map[digest.Digest]bool {
	t.Helper()
	out := map[digest.Digest]bool{root: true}
	var doc struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(fx.Blobs[root], &doc); err != nil {
		t.Fatalf("fixture manifest %s: %v", root, err)
	}
	for _, m := range doc.Manifests {
		for d := range manifestDigests(t, fx, m.Digest) {
			out[d] = true
		}
	}
	return out
}

// wantSourceLabels checks that every blob of the store named in ds has the
// distribution source label of host listing repo, and keeps the others.
func wantSourceLabels(t *testing.T, before, after map[digest.Digest]content.Info, ds []digest.Digest, host, repo string) {
	t.Helper()
	for _, d := range ds {
		info, ok := after[d]
		if !ok {
			continue
		}
		if v := info.Labels[labelSource+host]; !slices.Contains(strings.Split(v, ","), repo) {
			t.Errorf("blob %s: label %s = %q, want it to list %q", d, labelSource+host, v, repo)
		}
		for k, v := range before[d].Labels {
			if k != labelSource+host && info.Labels[k] != v {
				t.Errorf("blob %s: push changed label %s from %q to %q", d, k, v, info.Labels[k])
			}
		}
	}
}

// TestPushRoundTrip pulls fixtures from one registry and pushes them to
// another under another name: the same digests come out.
func TestPushRoundTrip(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fixtures := []struct {
		name string
		push func(testing.TB, string, string, string) testutil.Fixture
	}{
		{"whiteouts", testutil.PushWhiteoutImage},
		{"multiplatform", testutil.PushMultiPlatform},
		{"docker", testutil.PushDockerSchema2},
		{"dockerlist", testutil.PushDockerManifestList},
		{"zstd", testutil.PushZstd},
	}
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			fx := tc.push(t, regA.Host, "fx/"+tc.name, "v1")
			e := newEnv(t)
			local := e.pull(fx.Ref, pull.Options{AllPlatforms: true})
			before := e.infos()
			imgsBefore, err := e.store.DB.Images().List(e.ctx)
			if err != nil {
				t.Fatal(err)
			}

			repo := "copy/" + tc.name
			sink := &recorder{}
			desc, err := e.push(docker.Options{}, local, regB.Host+"/"+repo+":v2", push.Options{Progress: sink})
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != fx.Root.Digest || desc.MediaType != fx.Root.MediaType || desc.Size != fx.Root.Size {
				t.Fatalf("Push = %+v, want the fixture's root %+v", desc, fx.Root)
			}
			wantRoundTrip(t, registry{host: regB.Host}, repo, "v2", fx)

			// Nothing but labels changed in the store.
			after := e.infos()
			if len(after) != len(before) {
				t.Fatalf("push changed the store's blobs: %d before, %d after", len(before), len(after))
			}
			imgsAfter, err := e.store.DB.Images().List(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgsAfter) != len(imgsBefore) || imgsAfter[0].Name != imgsBefore[0].Name || imgsAfter[0].Target.Digest != imgsBefore[0].Target.Digest {
				t.Fatalf("push changed the images: %v, then %v", imgsBefore, imgsAfter)
			}
			var all []digest.Digest
			for d := range fx.Blobs {
				all = append(all, d)
			}
			wantSourceLabels(t, before, after, all, regB.Host, repo)

			// Every blob and manifest was reported, and ended uploaded or done.
			for d := range fx.Blobs {
				if st := sink.last(d.String()); st != progress.Done {
					t.Errorf("progress of %s ended %q, want %q", d, st, progress.Done)
				}
			}
		})
	}
}

// recorder is a progress.Sink that keeps every Update.
type recorder struct {
	mu      sync.Mutex
	updates []progress.Update
}

func (r *recorder) Update(u progress.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
}

// last returns the last status reported for id.
func (r *recorder) last(id string) progress.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s progress.Status
	for _, u := range r.updates {
		if u.ID == id && u.Status != "" {
			s = u.Status
		}
	}
	return s
}

// TestPushTwiceUploadsNothing: a second push of the same image to the same
// repository finds every blob and manifest there (HEAD) and only puts the
// tag again, which may have moved meanwhile.
func TestPushTwiceUploadsNothing(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, regB.Host)
	fx := testutil.PushMultiPlatform(t, regA.Host, "twice", "v1")
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{AllPlatforms: true})
	ref := proxy.Host + "/twice:v1"
	if _, err := e.push(docker.Options{}, local, ref, push.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Count(http.MethodPost, "/blobs/uploads/"); n == 0 {
		t.Fatal("the first push started no upload through the proxy")
	}
	proxy.Reset()
	sink := &recorder{}
	if _, err := e.push(docker.Options{}, local, ref, push.Options{Progress: sink}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodPost, http.MethodPatch} {
		if n := proxy.Count(m, "/blobs/uploads/"); n != 0 {
			t.Errorf("second push sent %d %s requests to /blobs/uploads/: %+v", n, m, proxy.Requests())
		}
	}
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodHead || r.Method == http.MethodGet && r.Path == "/v2/" {
			continue
		}
		if r.Method != http.MethodPut || r.Path != "/v2/twice/manifests/v1" {
			t.Errorf("second push sent %s %s; want HEADs and the tag's PUT only", r.Method, r.Path)
		}
	}
	for d := range fx.Blobs {
		if d != fx.Root.Digest && sink.last(d.String()) != progress.Exists {
			t.Errorf("second push: %s ended %q, want %q", d, sink.last(d.String()), progress.Exists)
		}
	}
	wantRoundTrip(t, registry{host: regB.Host}, "twice", "v1", fx)
}

// TestPushMountsAcrossRepositories: after a push to repository one, a push
// of the same image to repository two of the same registry mounts every
// blob (POST ?mount= answered 201) instead of uploading it.
func TestPushMountsAcrossRepositories(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, regB.Host)
	fx := testutil.PushWhiteoutImage(t, regA.Host, "src", "v1")
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{})
	if _, err := e.push(docker.Options{}, local, proxy.Host+"/one:v1", push.Options{}); err != nil {
		t.Fatal(err)
	}
	proxy.Reset()
	sink := &recorder{}
	if _, err := e.push(docker.Options{}, local, proxy.Host+"/two:v1", push.Options{Progress: sink}); err != nil {
		t.Fatal(err)
	}
	blobs := len(fx.Blobs) - 1 // all but the manifest
	mounts := 0
	for _, r := range proxy.Requests() {
		switch {
		case r.Method == http.MethodPost && r.Path == "/v2/two/blobs/uploads/":
			if r.Status != http.StatusCreated {
				t.Errorf("POST %s answered %d, want 201 (mounted)", r.Path, r.Status)
			}
			mounts++
		case r.Method == http.MethodPatch || r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
			t.Errorf("second push uploaded: %s %s", r.Method, r.Path)
		}
	}
	if mounts != blobs {
		t.Fatalf("second push mounted %d blobs, want %d: %+v", mounts, blobs, proxy.Requests())
	}
	for d := range fx.Blobs {
		if d != fx.Root.Digest && sink.last(d.String()) != progress.Mounted {
			t.Errorf("%s ended %q, want %q", d, sink.last(d.String()), progress.Mounted)
		}
	}
	wantRoundTrip(t, registry{host: regB.Host}, "two", "v1", fx)
	// Both repositories are now sources for later pushes.
	info, err := e.store.DB.ContentStore().Info(e.ctx, fx.Root.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if v := info.Labels[labelSource+proxy.Host]; v != "one,two" {
		t.Fatalf("label %s = %q, want \"one,two\"", labelSource+proxy.Host, v)
	}
}

// TestPushIncompleteIndex: an index pulled for one platform cannot be
// pushed whole; the error, before anything is sent, names what is
// missing. With the host's platform, its manifest is pushed and tagged.
func TestPushIncompleteIndex(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, regB.Host)
	fx := testutil.PushMultiPlatform(t, regA.Host, "multi", "v1")
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{})
	host := images.DefaultPlatform()
	ref := proxy.Host + "/partial:v1"

	_, err := e.push(docker.Options{}, local, ref, push.Options{})
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("push of a one-platform pull = %v, want failed precondition", err)
	}
	t.Logf("push of a one-platform pull: %v", err)
	for _, p := range fx.Platforms {
		name := images.FormatPlatform(p)
		if images.Any(host).Match(p) {
			if !strings.Contains(err.Error(), "--platform ("+name+")") {
				t.Errorf("error %q does not suggest --platform %s", err, name)
			}
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name the missing platform %s", err, name)
		}
	}
	if !strings.Contains(err.Error(), "--all-platforms") {
		t.Errorf("error %q does not suggest --all-platforms", err)
	}
	if reqs := proxy.Requests(); len(reqs) != 0 {
		t.Fatalf("the failed push sent requests: %+v", reqs)
	}

	_, err = e.push(docker.Options{}, local, ref, push.Options{Platforms: []ocispec.Platform{host, {OS: "linux", Architecture: "arm64"}}})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("push of two platforms of an index = %v, want invalid argument", err)
	}
	_, err = e.push(docker.Options{}, local, ref, push.Options{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("push of a platform the image lacks = %v, want not found naming it", err)
	}
	other := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	if images.Any(host).Match(other) {
		other = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	_, err = e.push(docker.Options{}, local, ref, push.Options{Platforms: []ocispec.Platform{other}})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "--platform "+images.FormatPlatform(other)) {
		t.Fatalf("push of a platform not pulled = %v, want failed precondition suggesting to pull it", err)
	}
	if reqs := proxy.Requests(); len(reqs) != 0 {
		t.Fatalf("the refused pushes sent requests: %+v", reqs)
	}

	desc, err := e.push(docker.Options{}, local, ref, push.Options{Platforms: []ocispec.Platform{host}})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := images.Manifest(e.ctx, e.store.DB.ContentStore(), ocispec.Descriptor{MediaType: fx.Root.MediaType, Digest: fx.Root.Digest, Size: fx.Root.Size}, images.Any(host))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != want.Digest || desc.MediaType != want.MediaType || desc.Size != want.Size {
		t.Fatalf("Push = %+v, want the %s manifest %+v", desc, images.FormatPlatform(host), want)
	}
	sub := testutil.Fixture{Root: desc, Blobs: map[digest.Digest][]byte{}}
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[desc.Digest], &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]ocispec.Descriptor{desc, m.Config}, m.Layers...) {
		sub.Blobs[d.Digest] = fx.Blobs[d.Digest]
	}
	wantRoundTrip(t, registry{host: regB.Host}, "partial", "v1", sub)
}

// TestPushChunked uploads in PATCH chunks when the resolver says so.
func TestPushChunked(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, regB.Host)
	const layers, size = 3, 3 << 20
	fx := testutil.PushRandomImage(t, regA.Host, "random", "v1", layers, size)
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{NoUnpack: true})
	sink := &recorder{}
	if _, err := e.push(docker.Options{ChunkSize: 1 << 20}, local, proxy.Host+"/chunked:v1", push.Options{Progress: sink}); err != nil {
		t.Fatal(err)
	}
	// Each layer is a little over 3 MiB: at least three 1 MiB chunks.
	if n := proxy.Count(http.MethodPatch, "/v2/chunked/blobs/uploads/"); n < layers*3 {
		t.Fatalf("%d PATCH requests for %d layers of %d bytes in 1 MiB chunks: %+v", n, layers, size, proxy.Requests())
	}
	wantRoundTrip(t, registry{host: regB.Host}, "chunked", "v1", fx)
	// Upload progress grew to each layer's size.
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[fx.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		var top int64
		sink.mu.Lock()
		for _, u := range sink.updates {
			if u.ID == l.Digest.String() && u.Status == progress.Uploading {
				top = max(top, u.Current)
			}
		}
		sink.mu.Unlock()
		if top != l.Size {
			t.Errorf("layer %s: upload progress reached %d of %d bytes", l.Digest, top, l.Size)
		}
	}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPushBasicAuth pushes to a registry with htpasswd basic auth.
func TestPushBasicAuth(t *testing.T) {
	const user, password = "pusher", "s3cret-Passw0rd"
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{user: password})})
	fx := testutil.PushWhiteoutImage(t, regA.Host, "src", "v1")
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{NoUnpack: true})
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds := func(pw string) func(context.Context, string) (string, string, error) {
		return func(_ context.Context, host string) (string, string, error) {
			if host == regB.Host {
				return user, pw, nil
			}
			return "", "", nil
		}
	}
	ref := regB.Host + "/private/app:v1"

	_, err := e.push(docker.Options{Logger: logger}, local, ref, push.Options{Logger: logger})
	if err == nil || !errors.Is(err, errdefs.ErrUnauthenticated) && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("push without credentials = %v, want unauthenticated", err)
	}
	t.Logf("push without credentials: %v", err)
	const wrong = "not-the-Passw0rd"
	_, err = e.push(docker.Options{Logger: logger, Credentials: creds(wrong)}, local, ref, push.Options{Logger: logger})
	if err == nil || !errors.Is(err, errdefs.ErrUnauthenticated) && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("push with a wrong password = %v, want unauthenticated", err)
	}
	t.Logf("push with a wrong password: %v", err)
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error %q holds the password", err)
	}

	if _, err := e.push(docker.Options{Logger: logger, Credentials: creds(password)}, local, ref, push.Options{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	wantRoundTrip(t, registry{host: regB.Host, user: user, password: password}, "private/app", "v1", fx)
	for _, secret := range []string{password, wrong, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the logs hold a secret:\n%s", logs.String())
		}
	}
}

// TestPushNonDistributable: non-distributable layers are skipped unless
// allowed. distribution (2.8) checks on a manifest PUT that every layer
// without URLs is in the repository, non-distributable or not, so the
// fixture's layer (which has no URLs) makes the default push fail at its
// manifest, with an error that names the layer and says how to push it;
// the layer itself was not sent.
func TestPushNonDistributable(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushNonDistributable(t, regA.Host, "nd", "v1")
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[fx.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	var foreign digest.Digest
	for _, l := range m.Layers {
		if images.IsNonDistributable(l.MediaType) {
			foreign = l.Digest
		}
	}
	if foreign == "" {
		t.Fatal("the fixture has no non-distributable layer")
	}
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{NoUnpack: true})

	_, err := e.push(docker.Options{}, local, regB.Host+"/nd:v1", push.Options{})
	if err == nil {
		t.Fatal("distribution accepted a manifest whose non-distributable layer without URLs was not pushed; update this test's premise")
	}
	t.Logf("default push of a non-distributable layer without URLs: %v", err)
	if !strings.Contains(err.Error(), foreign.String()) || !strings.Contains(err.Error(), "non-distributable") || !strings.Contains(err.Error(), regB.Host) {
		t.Fatalf("push = %v, want an error naming the registry, the layer %s and why", err, foreign)
	}
	if status, _, _ := get(t, http.MethodHead, regB.Host, "nd/blobs/"+foreign.String(), "", ""); status != http.StatusNotFound {
		t.Fatalf("HEAD of the skipped layer: %d, want 404", status)
	}

	if _, err := e.push(docker.Options{}, local, regB.Host+"/nd:v1", push.Options{AllowNonDistributable: true}); err != nil {
		t.Fatal(err)
	}
	wantRoundTrip(t, registry{host: regB.Host}, "nd", "v1", fx)
}

// TestPushDigestReference pushes by digest only, and refuses a digest that
// is not the image's.
func TestPushDigestReference(t *testing.T) {
	regA := testutil.StartRegistry(t, testutil.RegistryConfig{})
	regB := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushDockerSchema2(t, regA.Host, "src", "v1")
	e := newEnv(t)
	local := e.pull(fx.Ref, pull.Options{NoUnpack: true})
	other := digest.FromString("another image")
	_, err := e.push(docker.Options{}, local, regB.Host+"/bydigest@"+other.String(), push.Options{})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), other.String()) {
		t.Fatalf("push to another digest = %v, want invalid argument naming it", err)
	}
	if _, err := e.push(docker.Options{}, local, fmt.Sprintf("%s/bydigest@%s", regB.Host, fx.Root.Digest), push.Options{}); err != nil {
		t.Fatal(err)
	}
	wantRoundTrip(t, registry{host: regB.Host}, "bydigest", fx.Root.Digest.String(), fx)
	if _, err := e.push(docker.Options{}, "no/such:image", regB.Host+"/x:v1", push.Options{}); !errdefs.IsNotFound(err) {
		t.Fatalf("push of a missing image = %v, want not found", err)
	}
}
