package transfer_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
)

// ctr2 is containerd 2.4's ctr, the client of the transfer service, built
// by scripts/testtools.sh (make deps runs it).
func ctr2(t testing.TB) string {
	t.Helper()
	return testutil.Tool(t, "ctr", "v2.4.2")
}

// run runs ctr 2.4 against d in namespace ns; combined output and error.
func run(t testing.TB, d *servertest.Daemon, ns string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(ctr2(t), append([]string{"-a", d.Address, "-n", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ok runs ctr 2.4 and fails the test when it fails.
func ok(t testing.TB, d *servertest.Daemon, ns string, args ...string) string {
	t.Helper()
	out, err := run(t, d, ns, args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// snapshotsOf lists the snapshots of ns in snapshotter sn: key → parent.
func snapshotsOf(t testing.TB, d *servertest.Daemon, ns, sn string) map[string]string {
	t.Helper()
	got := map[string]string{}
	s := d.Store.Snapshotter(sn)
	if s == nil {
		t.Fatalf("no snapshotter %s", sn)
	}
	err := s.Walk(namespaces.WithNamespace(context.Background(), ns), func(_ context.Context, info snapshots.Info) error {
		got[info.Name] = info.Parent
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkImage checks that want platforms of target have every blob.
func checkImage(t testing.TB, d *servertest.Daemon, ns string, target ocispec.Descriptor, want int) {
	t.Helper()
	sts, err := images.Check(namespaces.WithNamespace(context.Background(), ns), d.Store.DB.ContentStore(), nil, target)
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for _, st := range sts {
		if len(st.Missing) == 0 {
			complete++
		}
	}
	if complete != want {
		t.Fatalf("image %s: %d platforms complete, want %d: %+v", target.Digest, complete, want, sts)
	}
}

// TestCtr2Pull pulls with ctr 2.4's default path (the transfer service):
// the image is recorded and unpacked, and the progress ctr draws comes
// from the daemon.
func TestCtr2Pull(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "e2e/whiteouts", "v1")
	// ctr stops drawing when the call returns and drops what it has not
	// drawn yet: slow the blobs down so that the pull outlasts the first
	// progress messages on a loaded machine.
	proxy := testutil.StartProxy(t, reg.Host)
	proxy.Add(testutil.Fault{Path: "/blobs/", Delay: 300 * time.Millisecond})
	ref := strings.Replace(fix.Ref, reg.Host, proxy.Host, 1)
	d := servertest.Start(t)
	const ns = "c2"

	out := ok(t, d, ns, "images", "pull", "--plain-http", ref)
	for _, want := range []string{"Pulling from " + ref, "layer (", "waiting"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctr images pull output lacks %q:\n%s", want, out)
		}
	}
	img, err := d.Store.DB.Images().Get(namespaces.WithNamespace(context.Background(), ns), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != fix.Root.Digest {
		t.Fatalf("image %s at %s, want %s", ref, img.Target.Digest, fix.Root.Digest)
	}
	checkImage(t, d, ns, img.Target, 1)
	if sn := snapshotsOf(t, d, ns, "overlayfs"); len(sn) != 3 {
		t.Fatalf("snapshots after the pull: %v, want the 3 layers", sn)
	}
}

// imageOf returns the image name of ns, failing the test when missing.
func imageOf(t testing.TB, d *servertest.Daemon, ns, name string) images.Image {
	t.Helper()
	img, err := d.Store.DB.Images().Get(namespaces.WithNamespace(context.Background(), ns), name)
	if err != nil {
		t.Fatalf("image %s in namespace %s: %v", name, ns, err)
	}
	return img
}

// TestCtr2PullPlatforms pulls one platform of an index, then all of them
// (containerd 2.x unpacks none then), into overlayfs and native.
func TestCtr2PullPlatforms(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushMultiPlatform(t, reg.Host, "e2e/multi", "v1")
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "arm")

	ok(t, d, "arm", "images", "pull", "--plain-http", "--platform", "linux/arm64/v8", "--snapshotter", "native", fix.Ref)
	img := imageOf(t, d, "arm", fix.Ref)
	sts, err := images.Check(ctx, d.Store.DB.ContentStore(), nil, img.Target)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if arm := st.Platform.Architecture == "arm64"; arm != (len(st.Missing) == 0) {
			t.Errorf("--platform linux/arm64/v8: %s has %d blobs missing", images.FormatPlatform(st.Platform), len(st.Missing))
		}
	}
	// linux/arm64/v8 has one layer, unpacked into native only.
	if sn := snapshotsOf(t, d, "arm", "native"); len(sn) != 1 {
		t.Errorf("native snapshots after --platform linux/arm64/v8: %v, want its 1 layer", sn)
	}
	if sn := snapshotsOf(t, d, "arm", "overlayfs"); len(sn) != 0 {
		t.Errorf("overlayfs snapshots after a pull into native: %v", sn)
	}

	ok(t, d, "all", "images", "pull", "--plain-http", "--all-platforms", fix.Ref)
	checkImage(t, d, "all", imageOf(t, d, "all", fix.Ref).Target, 3)
	if sn := snapshotsOf(t, d, "all", "overlayfs"); len(sn) != 0 {
		t.Errorf("snapshots after --all-platforms: %v; containerd 2.x unpacks nothing then", sn)
	}

	ok(t, d, "host", "images", "pull", "--plain-http", fix.Ref)
	checkImage(t, d, "host", imageOf(t, d, "host", fix.Ref).Target, 1)
	if sn := snapshotsOf(t, d, "host", "overlayfs"); len(sn) != 2 {
		t.Errorf("overlayfs snapshots after the default pull: %v, want linux/amd64's 2 layers", sn)
	}
}

// TestCtr2PullErrors: what cannot be pulled says why, never just EOF.
func TestCtr2PullErrors(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	d := servertest.Start(t)
	for _, tc := range []struct {
		name, ref string
		want      []string
	}{
		{name: "missing", ref: reg.Host + "/e2e/nothing:v1", want: []string{"not found", "e2e/nothing"}},
		{name: "bad reference", ref: reg.Host + "/e2e/Bad:Ref", want: []string{"Bad"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, d, "errs", "images", "pull", "--plain-http", tc.ref)
			if err == nil {
				t.Fatalf("ctr images pull %s succeeded:\n%s", tc.ref, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("ctr images pull %s: output lacks %q:\n%s", tc.ref, w, out)
				}
			}
			if strings.Contains(out, "ctr: EOF") {
				t.Errorf("ctr images pull %s: a bare EOF:\n%s", tc.ref, out)
			}
			t.Logf("ctr images pull %s: %s", tc.ref, out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
		})
	}
	if imgs, err := d.Store.DB.Images().List(namespaces.WithNamespace(context.Background(), "errs")); err != nil || len(imgs) != 0 {
		t.Fatalf("images after failed pulls: %v, %v", imgs, err)
	}
}

// TestCtr2PushTag pushes what ctr 2.4 pulled under another name, tags it,
// and pushes to a registry that asks for credentials, which the daemon
// asks ctr for over the auth stream (--user); pulling from there then
// needs them too.
func TestCtr2PushTagAuth(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "e2e/whiteouts", "v1")
	locked := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{"alice": "s3cret-pw"})})
	d := servertest.Start(t)
	const ns = "push"
	ok(t, d, ns, "images", "pull", "--plain-http", fix.Ref)

	other := reg.Host + "/e2e/pushed:v2"
	ok(t, d, ns, "images", "push", "--plain-http", other, fix.Ref)
	if b, dg := testutil.FetchManifest(t, reg.Host, "e2e/pushed", "v2"); dg != fix.Root.Digest.String() || digest.FromBytes(b) != fix.Root.Digest {
		t.Fatalf("pushed manifest %s (%s), want %s", dg, digest.FromBytes(b), fix.Root.Digest)
	}

	tagged := "example.com/e2e/tagged:v3"
	if out := ok(t, d, ns, "images", "tag", fix.Ref, tagged); !strings.Contains(out, tagged) {
		t.Fatalf("ctr images tag: %q", out)
	}
	if got := imageOf(t, d, ns, tagged).Target.Digest; got != fix.Root.Digest {
		t.Fatalf("tagged %s at %s, want %s", tagged, got, fix.Root.Digest)
	}
	if out, err := run(t, d, ns, "images", "tag", reg.Host+"/e2e/absent:v1", tagged+"-2"); err == nil || !strings.Contains(out, "not found") || !strings.Contains(out, "e2e/absent") {
		t.Fatalf("ctr images tag of a missing image: %v\n%s", err, out)
	}

	secret := locked.Host + "/e2e/secret:v1"
	if out, err := run(t, d, ns, "images", "push", "--plain-http", secret, tagged); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("push without credentials: %v\n%s", err, out)
	}
	ok(t, d, ns, "images", "push", "--plain-http", "--user", "alice:s3cret-pw", secret, tagged)
	if out, err := run(t, d, "auth", "images", "pull", "--plain-http", secret); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("pull without credentials: %v\n%s", err, out)
	}
	ok(t, d, "auth", "images", "pull", "--plain-http", "--user", "alice:s3cret-pw", secret)
	img := imageOf(t, d, "auth", secret)
	if img.Target.Digest != fix.Root.Digest {
		t.Fatalf("pulled %s at %s, want %s", secret, img.Target.Digest, fix.Root.Digest)
	}
	checkImage(t, d, "auth", img.Target, 1)
}

// export runs ctr 2.4's images export into a file and returns it once it
// is a whole archive. containerd 2.4's ctr can exit before its copy of
// the stream is written out (a client-side race, seen against containerd
// itself), so a truncated archive is exported again, a few times.
func export(t testing.TB, d *servertest.Daemon, ns string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "archive.tar")
	var why error
	for range 5 {
		ok(t, d, ns, append(append([]string{"images", "export"}, args[:len(args)-1]...), out, args[len(args)-1])...)
		if why = wholeArchive(out); why == nil {
			return out
		}
		t.Logf("export again: %v", why)
	}
	t.Fatalf("ctr images export %v: %v", args, why)
	return ""
}

// wholeArchive reads a tar to its end and wants an index.json in it.
func wholeArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	index := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
		index = index || h.Name == "index.json"
	}
	if !index {
		return fmt.Errorf("%s: no index.json", path)
	}
	return nil
}

// TestCtr2ExportImport round-trips images through ctr 2.4's export and
// import (archive data over the streaming service both ways): the images
// come back at the same digests, unpacked, with --all-platforms too.
func TestCtr2ExportImport(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	one := testutil.PushWhiteoutImage(t, reg.Host, "e2e/whiteouts", "v1")
	multi := testutil.PushMultiPlatform(t, reg.Host, "e2e/multi", "v1")
	d := servertest.Start(t)
	ok(t, d, "src", "images", "pull", "--plain-http", one.Ref)
	ok(t, d, "src", "images", "pull", "--plain-http", "--all-platforms", multi.Ref)

	archive := export(t, d, "src", one.Ref)
	ok(t, d, "dst", "images", "import", archive)
	img := imageOf(t, d, "dst", one.Ref)
	if img.Target.Digest != one.Root.Digest {
		t.Fatalf("imported %s at %s, want %s", one.Ref, img.Target.Digest, one.Root.Digest)
	}
	checkImage(t, d, "dst", img.Target, 1)
	if sn := snapshotsOf(t, d, "dst", "overlayfs"); len(sn) != 3 {
		t.Fatalf("snapshots after the import: %v, want the 3 layers", sn)
	}

	archive = export(t, d, "src", "--all-platforms", multi.Ref)
	ok(t, d, "all", "images", "import", "--all-platforms", archive)
	img = imageOf(t, d, "all", multi.Ref)
	if img.Target.Digest != multi.Root.Digest {
		t.Fatalf("imported %s at %s, want %s", multi.Ref, img.Target.Digest, multi.Root.Digest)
	}
	checkImage(t, d, "all", img.Target, 3)

	// Without --all-platforms only the host's layers travel.
	archive = export(t, d, "src", multi.Ref)
	ok(t, d, "host", "images", "import", archive)
	checkImage(t, d, "host", imageOf(t, d, "host", multi.Ref).Target, 1)

	if out, err := run(t, d, "src", "images", "export", filepath.Join(t.TempDir(), "x.tar"), reg.Host+"/e2e/absent:v1"); err == nil || !strings.Contains(out, "e2e/absent") {
		t.Fatalf("export of a missing image: %v\n%s", err, out)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.tar")
	if err := os.WriteFile(garbage, []byte("not an archive at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, d, "bad", "images", "import", garbage); err == nil || strings.Contains(out, "ctr: EOF") {
		t.Fatalf("import of garbage: %v\n%s", err, out)
	}
}

// TestCtr2Cancel: a client that goes away in the middle of a pull stops
// it (the call's cancellation reaches the job, which ends with Canceled
// rather than waiting for the registry) and leaves no image or lease.
func TestCtr2Cancel(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	testutil.PushRandomImage(t, reg.Host, "e2e/random", "v1", 2, 1<<20)
	proxy := testutil.StartProxy(t, reg.Host)
	// Blobs never come: only the client going away ends the pull (the
	// registry client's idle timeout would, much later, with another
	// error).
	proxy.Add(testutil.Fault{Path: "/blobs/", Delay: time.Hour})
	d := servertest.Start(t)
	const ns = "cancel"
	ref := proxy.Host + "/e2e/random:v1"

	cmd := exec.Command(ctr2(t), "-a", d.Address, "-n", ns, "images", "pull", "--plain-http", ref)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Wait for the pull to reach the blobs.
	for proxy.Count("GET", "/blobs/") == 0 {
		select {
		case err := <-exited:
			t.Fatalf("ctr images pull %s ended before fetching blobs: %v\n%s", ref, err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	exited <- nil // for the cleanup

	// Stop waits for the jobs; the long grace lets a job that missed the
	// cancellation run on until the registry client gives up.
	d.Server.Stop(time.Hour)
	rec := httptest.NewRecorder()
	d.Server.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `method="/containerd.services.transfer.v1.Transfer/Transfer",code="Canceled"`; !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("metrics lack %s: the pull did not end by cancellation:\n%s", want, rec.Body.String())
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	if imgs, err := d.Store.DB.Images().List(ctx); err != nil || len(imgs) != 0 {
		t.Fatalf("images after the cancelled pull: %v, %v", imgs, err)
	}
	// The lease ctr took for the call stays until it expires (ctr was
	// killed before it could delete it), as against containerd; the
	// pull's own must be gone.
	ls, err := d.Store.DB.Leases().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		for k := range l.Labels {
			if strings.HasPrefix(k, "strata.") {
				t.Errorf("lease %s (%v) left by the cancelled pull", l.ID, l.Labels)
			}
		}
	}
}

// TestCtr16And24Agree pulls the same images with ctr 1.6 (client-side
// pull through the content, images, snapshots and diff services) and ctr
// 2.4 (the transfer service): same image records, same blobs, same
// snapshots with the same files. ctr 2.4 asks for the manifests and
// configs of every platform by default (all_metadata), ctr 1.6 with
// --all-metadata.
func TestCtr16And24Agree(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fixes := []testutil.Fixture{
		testutil.PushWhiteoutImage(t, reg.Host, "e2e/whiteouts", "v1"),
		testutil.PushMultiPlatform(t, reg.Host, "e2e/multi", "v1"),
		testutil.PushDockerSchema2(t, reg.Host, "e2e/docker", "v1"),
	}
	d := servertest.Start(t)
	for _, fix := range fixes {
		d.Ctr(t, "c16", "images", "pull", "--plain-http", "--all-metadata", fix.Ref) // Debian's ctr 1.6
		ok(t, d, "c24", "images", "pull", "--plain-http", fix.Ref)
		a, b := imageOf(t, d, "c16", fix.Ref), imageOf(t, d, "c24", fix.Ref)
		if a.Target.Digest != b.Target.Digest || a.Target.MediaType != b.Target.MediaType || a.Target.Size != b.Target.Size {
			t.Errorf("%s: ctr 1.6 recorded %+v, ctr 2.4 %+v", fix.Ref, a.Target, b.Target)
		}
	}
	if a, b := blobsOf(t, d, "c16"), blobsOf(t, d, "c24"); !maps.Equal(a, b) {
		t.Errorf("blobs: ctr 1.6 %v\nctr 2.4 %v", a, b)
	}
	a, b := snapshotsOf(t, d, "c16", "overlayfs"), snapshotsOf(t, d, "c24", "overlayfs")
	if !maps.Equal(a, b) {
		t.Fatalf("snapshots: ctr 1.6 %v\nctr 2.4 %v", a, b)
	}
	for name := range a {
		ta, tb := treeOf(t, d, "c16", name), treeOf(t, d, "c24", name)
		if diffs := testutil.DiffTrees(ta, tb); len(diffs) > 0 {
			t.Errorf("snapshot %s: ctr 2.4's differs from ctr 1.6's:\n%s", name, strings.Join(diffs, "\n"))
		}
	}
}

// blobsOf lists the blobs of ns with their sizes and labels that are not
// times.
func blobsOf(t testing.TB, d *servertest.Daemon, ns string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := d.Store.DB.ContentStore().Walk(namespaces.WithNamespace(context.Background(), ns), func(info content.Info) error {
		got[info.Digest.String()] = fmt.Sprint(info.Size)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// treeOf reads the files of committed snapshot name of ns, through a view.
func treeOf(t testing.TB, d *servertest.Daemon, ns, name string) map[string]testutil.TreeEntry {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	sn := d.Store.Snapshotter("overlayfs")
	key := "treeOf-" + name
	ms, err := sn.View(ctx, key, name)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(ctx, key)
	// UnmountUnder leaves its root alone: mount below it.
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mount.UnmountUnder(filepath.Dir(dir)); err != nil {
			t.Error(err)
		}
	}()
	return testutil.ReadTree(t, dir)
}
