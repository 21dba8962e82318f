package images_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-oci/strata/archive/tartest"
	criimages "github.com/strata-oci/strata/cri/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/wiring"
)

// daemon is strata's gRPC server, CRI included, on a socket of its own.
type daemon struct {
	sock   string
	store  *wiring.Store
	server *server.Server
	images runtime.ImageServiceClient
}

func startDaemon(t *testing.T, cfg server.Config) *daemon {
	t.Helper()
	d := servertest.StartWith(t, cfg)
	return &daemon{sock: d.Address, store: d.Store, server: d.Server, images: runtime.NewImageServiceClient(d.Conn)}
}

// crictlPath builds crictl v1.37.0 once (scripts/testtools.sh) and returns it.
func crictlPath(t *testing.T) string {
	t.Helper()
	return testutil.Tool(t, "crictl", "v1.37.0")
}

// crictl runs crictl against d and returns its stdout, stderr and error.
func (d *daemon) crictl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ep := "unix://" + d.sock
	cmd := exec.Command(crictlPath(t), append([]string{"--config", os.DevNull, "-r", ep, "-i", ep, "--timeout", "60s"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (d *daemon) mustCrictl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := d.crictl(t, args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// userImage pushes a linux/amd64 (the host's platform in CI) OCI image
// whose config runs as user, with one small layer, and returns the
// manifest's and the config's digests.
func userImage(t *testing.T, host, repo, tag, user string) (manifest, config digest.Digest) {
	t.Helper()
	layer := tartest.Tar(tartest.Dir("etc"), tartest.File("etc/hello", "hello from "+repo))
	gz := tartest.Gzip(layer)
	ld := testutil.PushBlob(t, host, repo, gz, ocispec.MediaTypeImageLayerGzip)
	created := tartest.Epoch
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config: ocispec.ImageConfig{User: user, Cmd: []string{"/hello"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}}}
	cb, _ := json.Marshal(cfg)
	cd := testutil.PushBlob(t, host, repo, cb, ocispec.MediaTypeImageConfig)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cd, Layers: []ocispec.Descriptor{ld}}
	md := testutil.PushManifest(t, host, repo, tag, m, ocispec.MediaTypeImageManifest)
	return md.Digest, cd.Digest
}

// criNames returns the image records of the CRI's namespace by name.
func criNames(t *testing.T, d *daemon) map[string]map[string]string {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), criimages.Namespace)
	recs, err := d.store.DB.Images().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range recs {
		out[r.Name] = r.Labels
	}
	return out
}

// TestCrictl drives the image service with the real crictl: pull, images
// (-q, --digests), inspecti, imagefsinfo, rmi, and checks the records
// kubelet's conventions ask for.
func TestCrictl(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	mdig, cdig := userImage(t, reg.Host, "cri/app", "v1", "1000:1000")
	ref := reg.Host + "/cri/app:v1"
	d := startDaemon(t, server.Config{CRI: server.CRIConfig{PinnedImages: []string{ref}}})

	if out := d.mustCrictl(t, "version"); !strings.Contains(out, "RuntimeName:  strata") || !strings.Contains(out, "RuntimeApiVersion:  v1") {
		t.Fatalf("crictl version =\n%s", out)
	}
	out := d.mustCrictl(t, "pull", ref)
	if !strings.Contains(out, cdig.String()) {
		t.Fatalf("crictl pull %s = %q, want the image id %s", ref, out, cdig)
	}
	// The three names, each labelled managed (and pinned, as configured).
	names := criNames(t, d)
	for _, n := range []string{ref, reg.Host + "/cri/app@" + mdig.String(), cdig.String()} {
		l, ok := names[n]
		if !ok || l[labels.CRIManaged] != "managed" || l[labels.CRIPinned] != "pinned" {
			t.Fatalf("image records after the pull = %v, want %q labelled managed and pinned", names, n)
		}
	}
	if len(names) != 3 {
		t.Fatalf("image records after the pull = %v, want exactly 3 names", names)
	}
	// What `strata -n k8s.io images ls` reads is this namespace: ctr sees it too.
	if ctr, err := exec.LookPath("ctr"); err == nil {
		cout, err := exec.Command(ctr, "-a", d.sock, "-n", "k8s.io", "images", "ls", "-q").CombinedOutput()
		if err != nil || !strings.Contains(string(cout), ref) {
			t.Fatalf("ctr -n k8s.io images ls -q: %v\n%s", err, cout)
		}
	}

	if out := strings.TrimSpace(d.mustCrictl(t, "images", "-q")); out != cdig.String() {
		t.Fatalf("crictl images -q = %q, want %s", out, cdig)
	}
	out = d.mustCrictl(t, "images", "--digests")
	if !strings.Contains(out, reg.Host+"/cri/app") || !strings.Contains(out, "v1") || !strings.Contains(out, mdig.Encoded()[:13]) {
		t.Fatalf("crictl images --digests =\n%s\nwant %s/cri/app v1 with digest %s", out, reg.Host, mdig.Encoded()[:13])
	}

	var st struct {
		Status struct {
			ID          string   `json:"id"`
			RepoTags    []string `json:"repoTags"`
			RepoDigests []string `json:"repoDigests"`
			Size        string   `json:"size"`
			UID         *struct {
				Value string `json:"value"`
			} `json:"uid"`
			Pinned bool `json:"pinned"`
		} `json:"status"`
		// crictl shows the "info" entry of the verbose map, decoded.
		Info json.RawMessage `json:"info"`
	}
	raw := d.mustCrictl(t, "inspecti", ref)
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("crictl inspecti: %v\n%s", err, raw)
	}
	s := st.Status
	if s.ID != cdig.String() || len(s.RepoTags) != 1 || s.RepoTags[0] != ref ||
		len(s.RepoDigests) != 1 || s.RepoDigests[0] != reg.Host+"/cri/app@"+mdig.String() ||
		s.Size == "" || s.Size == "0" || s.UID == nil || s.UID.Value != "1000" || !s.Pinned {
		t.Fatalf("crictl inspecti %s =\n%s\nwant id %s, tag, digest, size > 0, uid 1000, pinned", ref, raw, cdig)
	}
	var info struct {
		ChainID   string        `json:"chainID"`
		ImageSpec ocispec.Image `json:"imageSpec"`
	}
	if err := json.Unmarshal(st.Info, &info); err != nil || info.ImageSpec.Config.User != "1000:1000" || info.ChainID == "" {
		t.Fatalf("crictl inspecti verbose info = %s (%v), want the config and a chain ID", st.Info, err)
	}
	// The id and a prefix of it name the image too.
	if raw := d.mustCrictl(t, "inspecti", cdig.Encoded()[:12]); !strings.Contains(raw, cdig.String()) {
		t.Fatalf("crictl inspecti %s =\n%s", cdig.Encoded()[:12], raw)
	}

	var fsinfo struct {
		Status struct {
			ImageFilesystems []struct {
				FsID       struct{ Mountpoint string } `json:"fsId"`
				UsedBytes  struct{ Value string }      `json:"usedBytes"`
				InodesUsed struct{ Value string }      `json:"inodesUsed"`
			} `json:"imageFilesystems"`
		} `json:"status"`
	}
	raw = d.mustCrictl(t, "imagefsinfo")
	if err := json.Unmarshal([]byte(raw), &fsinfo); err != nil || len(fsinfo.Status.ImageFilesystems) == 0 {
		t.Fatalf("crictl imagefsinfo: %v\n%s", err, raw)
	}
	fi := fsinfo.Status.ImageFilesystems[0]
	wantMount := filepath.Join(d.store.Root, "snapshots", d.store.DefaultSnapshotter)
	var used, inodes uint64
	fmt.Sscan(fi.UsedBytes.Value, &used)
	fmt.Sscan(fi.InodesUsed.Value, &inodes)
	snapUsed, snapInodes := du(t, wantMount)
	contentUsed, contentInodes := du(t, filepath.Join(d.store.Root, "content"))
	if fi.FsID.Mountpoint != wantMount || used != snapUsed+contentUsed || inodes != snapInodes+contentInodes || contentUsed == 0 {
		t.Fatalf("crictl imagefsinfo = %s, want %s with %d+%d bytes and %d+%d inodes (snapshots + content)",
			raw, wantMount, snapUsed, contentUsed, snapInodes, contentInodes)
	}

	d.mustCrictl(t, "rmi", ref)
	if out := strings.TrimSpace(d.mustCrictl(t, "images", "-q")); out != "" {
		t.Fatalf("crictl images -q after rmi = %q, want nothing", out)
	}
	if names := criNames(t, d); len(names) != 0 {
		t.Fatalf("image records after rmi = %v, want none (every name of the image goes)", names)
	}
}

// du is what `du --apparent-size`'s opposite counts: allocated bytes and
// inodes under dir, by an independent walk with find(1).
func du(t *testing.T, dir string) (bytes, inodes uint64) {
	t.Helper()
	out, err := exec.Command("find", dir, "-printf", "%i %b\n").Output()
	if err != nil {
		t.Fatalf("find %s: %v", dir, err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ino, blocks, _ := strings.Cut(line, " ")
		if seen[ino] {
			continue
		}
		seen[ino] = true
		var b uint64
		fmt.Sscan(blocks, &b)
		bytes += b * 512
		inodes++
	}
	return bytes, inodes
}

// TestCrictlPullCreds pulls from a registry that wants HTTP Basic
// credentials: without them and with a wrong password the pull fails as
// Unauthenticated and leaves nothing; with --creds it works.
func TestCrictlPullCreds(t *testing.T) {
	auth := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{"alice": "s3cret-pw"})})
	open := testutil.StartRegistry(t, testutil.RegistryConfig{})
	_, cdig := userImage(t, open.Host, "cri/private", "v1", "nobody")
	// The registries keep everything on disk and read it per request: the
	// guarded one serves what was pushed to the open one.
	if out, err := exec.Command("cp", "-a", filepath.Join(open.Dir, "data"), auth.Dir).CombinedOutput(); err != nil {
		t.Fatalf("copy registry data: %v\n%s", err, out)
	}
	ref := auth.Host + "/cri/private:v1"
	d := startDaemon(t, server.Config{})

	for _, args := range [][]string{{"pull", ref}, {"pull", "--creds", "alice:wrong", ref}} {
		out, errOut, err := d.crictl(t, args...)
		if err == nil || !strings.Contains(errOut, "Unauthenticated") {
			t.Fatalf("crictl %s: %v, want an Unauthenticated error\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		if names := criNames(t, d); len(names) != 0 {
			t.Fatalf("image records after a refused pull = %v, want none", names)
		}
	}
	d.mustCrictl(t, "pull", "--creds", "alice:s3cret-pw", ref)
	raw := d.mustCrictl(t, "inspecti", ref)
	if !strings.Contains(raw, cdig.String()) || !strings.Contains(raw, `"username": "nobody"`) {
		t.Fatalf("crictl inspecti %s =\n%s\nwant id %s and username nobody", ref, raw, cdig)
	}
}

// TestBadInput checks the gRPC codes and messages of requests kubelet can
// get wrong, and that a failed pull leaves no image behind.
func TestBadInput(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushRandomImage(t, reg.Host, "cri/big", "v1", 1, 1<<20)
	proxy := testutil.StartProxy(t, reg.Host)
	d := startDaemon(t, server.Config{CRI: server.CRIConfig{PullProgressTimeout: 300 * time.Millisecond}})
	ctx := context.Background()

	pull := func(ref string, auth *runtime.AuthConfig) error {
		_, err := d.images.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
		return err
	}
	for _, tc := range []struct {
		name string
		ref  string
		auth *runtime.AuthConfig
		code codes.Code
		msg  string
	}{
		{name: "invalid reference", ref: "UPPER/Case::x", code: codes.InvalidArgument, msg: "UPPER/Case::x"},
		{name: "no image", ref: "", code: codes.InvalidArgument, msg: "no image"},
		{name: "missing tag", ref: reg.Host + "/cri/big:nope", code: codes.NotFound, msg: "nope"},
		{name: "missing repository", ref: reg.Host + "/cri/none:v1", code: codes.NotFound, msg: "cri/none"},
		{name: "auth not base64", ref: reg.Host + "/cri/big:v1", auth: &runtime.AuthConfig{Auth: "%%%"}, code: codes.InvalidArgument, msg: "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pull(tc.ref, tc.auth)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("PullImage(%q) = %v, want %s naming %q", tc.ref, err, tc.code, tc.msg)
			}
		})
	}

	// A registry that stops sending: the progress watchdog cancels.
	proxy.Add(testutil.Fault{Path: "/blobs/" + fixLayer(t, fix).String(), Delay: time.Hour})
	// The client's own deadline only keeps a broken watchdog from hanging
	// the test: its DeadlineExceeded would not say "no progress".
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := d.images.PullImage(sctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: proxy.Host + "/cri/big:v1"}})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "no progress") {
		t.Fatalf("PullImage from a stalled registry = %v, want DeadlineExceeded saying no progress", err)
	}
	if names := criNames(t, d); len(names) != 0 {
		t.Fatalf("image records after a stalled pull = %v, want none", names)
	}
	lr, err := d.images.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil || len(lr.Images) != 0 {
		t.Fatalf("ListImages after failed pulls = %v, %v; want none", lr, err)
	}

	// Absent images: a nil image, and RemoveImage is idempotent.
	sr, err := d.images.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "busybox"}})
	if err != nil || sr.Image != nil {
		t.Fatalf("ImageStatus(busybox) = %v, %v; want a nil image, no error", sr, err)
	}
	for _, name := range []string{"busybox", strings.Repeat("0", 64), "sha256:" + strings.Repeat("0", 64)} {
		if _, err := d.images.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: name}}); err != nil {
			t.Fatalf("RemoveImage(%q) of an absent image = %v, want nil", name, err)
		}
	}
}

// fixLayer is the first layer of a PushRandomImage fixture.
func fixLayer(t *testing.T, fix testutil.Fixture) digest.Digest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(fix.Blobs[fix.Root.Digest], &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("fixture manifest: %v", err)
	}
	return m.Layers[0].Digest
}

// TestPullProgress checks that a pull's progress reaches the event
// exchange and the metrics, and that StreamImages sends the image once.
func TestPullProgress(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushRandomImage(t, reg.Host, "cri/progress", "v1", 2, 256<<10)
	d := startDaemon(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := d.server.Events().Subscribe(ctx, `topic=="`+criimages.TopicPullProgress+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.images.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: fix.Ref}}); err != nil {
		t.Fatal(err)
	}
	layer := fixLayer(t, fix).String()
	done := false
	for !done {
		select {
		case env, ok := <-sub.C:
			if !ok {
				t.Fatalf("event subscription ended: %v", sub.Err())
			}
			if env.Namespace == criimages.Namespace && bytes.Contains(env.Event.GetValue(), []byte(layer)) && bytes.Contains(env.Event.GetValue(), []byte("done")) {
				done = true
			}
		default:
			t.Fatalf("no %s event saying layer %s is done", criimages.TopicPullProgress, layer)
		}
	}
	rec := httptest.NewRecorder()
	d.server.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if m := rec.Body.String(); !strings.Contains(m, `strata_cri_pulls_total{outcome="done"} 1`) || strings.Contains(m, "strata_cri_pull_bytes_total 0\n") {
		t.Fatalf("metrics after a pull:\n%s", m)
	}

	stream, err := d.images.StreamImages(ctx, &runtime.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		r, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("StreamImages: %v", err)
			}
			break
		}
		for _, img := range r.Images {
			got = append(got, img.Id)
		}
	}
	if len(got) != 1 {
		t.Fatalf("StreamImages sent %v, want the one image once", got)
	}
}

// TestConcurrentPulls: kubelet starting several pods of one image pulls it
// once; every blob is downloaded once, and every pull answers the same id.
func TestConcurrentPulls(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushRandomImage(t, reg.Host, "cri/many", "v1", 3, 512<<10)
	proxy := testutil.StartProxy(t, reg.Host)
	d := startDaemon(t, server.Config{})
	ref := proxy.Host + "/cri/many:v1"
	const pods = 6
	ids := make(chan string, pods)
	errs := make(chan error, pods)
	for range pods {
		go func() {
			r, err := d.images.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
			errs <- err
			ids <- r.GetImageRef()
		}()
	}
	first := ""
	for range pods {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		id := <-ids
		if first == "" {
			first = id
		}
		if id != first || id == "" {
			t.Fatalf("concurrent pulls answered ids %q and %q, want one", first, id)
		}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fix.Blobs[fix.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if n := proxy.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
			t.Fatalf("layer %s downloaded %d times by %d concurrent pulls, want once", l.Digest, n, pods)
		}
	}
}
