package server_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
)

// ctrBlobs returns the digest → size columns of ctr content ls.
func ctrBlobs(t *testing.T, d *servertest.Daemon, ns string) map[string]string {
	t.Helper()
	blobs := map[string]string{}
	for _, r := range servertest.CtrContentRows(t, d.Ctr(t, ns, "content", "ls")) {
		blobs[r[0]] = r[1]
	}
	return blobs
}

// fixtureBlobs is what ctrBlobs should say of a fixture's blobs.
func fixtureBlobs(fix testutil.Fixture) map[string]string {
	blobs := map[string]string{}
	for d, b := range fix.Blobs {
		blobs[d.String()] = ctrSize(int64(len(b)))
	}
	return blobs
}

// ctrSize formats n as ctr content ls does (go-units HumanSize: decimal
// units, four significant digits): 829B, 4.196MB.
func ctrSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ctrCheckComplete asserts that ctr images check finds ref alone, complete
// with want blobs and unpacked.
func ctrCheckComplete(t *testing.T, d *servertest.Daemon, ns, ref, root string, want int) {
	t.Helper()
	rows := servertest.CtrTable(t, d.Ctr(t, ns, "images", "check"))
	status := "complete (" + strconv.Itoa(want) + "/" + strconv.Itoa(want) + ")"
	if len(rows) != 1 || rows[0]["REF"] != ref || rows[0]["DIGEST"] != root || rows[0]["STATUS"] != status || rows[0]["UNPACKED"] != "true" {
		t.Fatalf("ctr images check = %v, want %s at %s %s and unpacked", rows, ref, root, status)
	}
}

// fixtureChain returns the chain IDs of a single-manifest fixture, read
// from its blobs.
func fixtureChain(t *testing.T, fix testutil.Fixture) []digest.Digest {
	t.Helper()
	var man ocispec.Manifest
	var cfg ocispec.Image
	if err := json.Unmarshal(fix.Blobs[fix.Root.Digest], &man); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fix.Blobs[man.Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	return images.ChainIDs(cfg.RootFS.DiffIDs)
}

// TestCtrImagesExportImport round-trips an image through ctr images export
// and ctr images import, with everything of it collected in between: the
// image comes back at the same digest, complete and unpacked, with the same
// blobs byte for byte and the same layer snapshots.
func TestCtrImagesExportImport(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "e2e/export", "v1")
	d := servertest.Start(t)
	const ns = "e2e"
	root := fix.Root.Digest.String()
	chain := fixtureChain(t, fix)
	committed := func() []string {
		var keys []string
		for _, r := range servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "ls")) {
			if r["KIND"] != "Committed" {
				t.Fatalf("snapshot %q is %s, want only committed layers", r["KEY"], r["KIND"])
			}
			keys = append(keys, r["KEY"])
		}
		sort.Strings(keys)
		return keys
	}
	wantChain := make([]string, len(chain))
	for i, c := range chain {
		wantChain[i] = c.String()
	}
	sort.Strings(wantChain)

	d.Ctr(t, ns, "images", "pull", "--plain-http", fix.Ref)
	if got, want := ctrBlobs(t, d, ns), fixtureBlobs(fix); !sameMap(got, want) {
		t.Fatalf("ctr content ls after pull = %v, want the fixture's %v", got, want)
	}

	out := filepath.Join(t.TempDir(), "out.tar")
	d.Ctr(t, ns, "images", "export", out, fix.Ref)
	// An OCI layout with every blob of the image (and a docker manifest.json).
	entries := tarEntries(t, out)
	for _, name := range []string{"oci-layout", "index.json", "manifest.json"} {
		if _, ok := entries[name]; !ok {
			t.Errorf("exported %s has no %s", out, name)
		}
	}
	for dg, b := range fix.Blobs {
		name := "blobs/sha256/" + dg.Encoded()
		if got, ok := entries[name]; !ok || got != string(b) {
			t.Errorf("exported %s: %s missing or different (%d bytes, want %d)", out, name, len(got), len(b))
		}
	}

	// rm --sync collects synchronously: nothing of the image is left.
	if got := strings.TrimSpace(d.Ctr(t, ns, "images", "rm", "--sync", fix.Ref)); got != fix.Ref {
		t.Fatalf("ctr images rm --sync printed %q, want %s", got, fix.Ref)
	}
	if rows := servertest.CtrTable(t, d.Ctr(t, ns, "images", "ls")); len(rows) != 0 {
		t.Fatalf("ctr images ls after rm = %v", rows)
	}
	if got := ctrBlobs(t, d, ns); len(got) != 0 {
		t.Fatalf("ctr content ls after rm --sync = %v, want nothing", got)
	}
	if got := committed(); len(got) != 0 {
		t.Fatalf("ctr snapshots ls after rm --sync = %v, want nothing", got)
	}

	imp := d.Ctr(t, ns, "images", "import", out)
	if !strings.Contains(imp, "unpacking "+fix.Ref+" ("+root+")...done") {
		t.Fatalf("ctr images import printed:\n%s", imp)
	}
	rows := servertest.CtrTable(t, d.Ctr(t, ns, "images", "ls"))
	if len(rows) != 1 || rows[0]["REF"] != fix.Ref || rows[0]["DIGEST"] != root || rows[0]["TYPE"] != fix.Root.MediaType {
		t.Fatalf("ctr images ls after import = %v, want %s at %s (%s)", rows, fix.Ref, root, fix.Root.MediaType)
	}
	ctrCheckComplete(t, d, ns, fix.Ref, root, 4)
	if got := committed(); strings.Join(got, " ") != strings.Join(wantChain, " ") {
		t.Fatalf("snapshots after import = %v, want the chain %v", got, wantChain)
	}

	// ctr's import also stores the archive's index, which only its lease
	// (gone when ctr exits) held: a collection leaves exactly the image.
	ctx := namespaces.WithNamespace(context.Background(), ns)
	if _, err := d.Store.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := ctrBlobs(t, d, ns), fixtureBlobs(fix); !sameMap(got, want) {
		t.Fatalf("ctr content ls after import and GC = %v, want the fixture's %v", got, want)
	}
	for dg, b := range fix.Blobs {
		if got := d.CtrIn(t, ns, nil, "content", "get", dg.String()); got != string(b) {
			t.Errorf("ctr content get %s after import: %d bytes differ from the fixture's %d", dg, len(got), len(b))
		}
	}
	ctrCheckComplete(t, d, ns, fix.Ref, root, 4)
}

// tarEntries reads the regular files of the tar at path.
func tarEntries(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s in %s: %v", h.Name, path, err)
		}
		entries[h.Name] = string(b)
	}
}

// TestCtrConcurrentPulls runs ten ctr pulls of one image at once through a
// proxy that counts what reaches the registry. ctr fetches on the client
// side and writes each blob through the content service under a ref named
// after its digest; while one pull writes it, the others' writers get
// Unavailable (the ref is locked) and retry until the blob is committed,
// then find it present: every blob crosses the network once.
func TestCtrConcurrentPulls(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushRandomImage(t, reg.Host, "e2e/random", "v1", 3, 4<<20)
	proxy := testutil.StartProxy(t, reg.Host)
	d := servertest.Start(t)
	const ns = "e2e"
	ref := proxy.Host + "/e2e/random:v1"
	root := fix.Root.Digest.String()

	const pulls = 10
	outs := make([]string, pulls)
	errs := make([]error, pulls)
	var wg sync.WaitGroup
	for i := range pulls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = d.CtrResult(ns, "images", "pull", "--plain-http", ref)
		}()
	}
	wg.Wait()
	for i := range pulls {
		if errs[i] != nil {
			t.Errorf("pull %d of %d: %v\n%s", i+1, pulls, errs[i], outs[i])
		} else if !strings.Contains(outs[i], "done") {
			t.Errorf("pull %d of %d printed no done:\n%s", i+1, pulls, outs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every pull resolves the tag; the manifest (by digest) and each blob
	// are fetched once in all.
	if n := proxy.Count(http.MethodGet, "/manifests/"+root); n != 1 {
		t.Errorf("manifest %s: %d GETs from the registry, want 1", root, n)
	}
	for dg := range fix.Blobs {
		if dg == fix.Root.Digest {
			continue
		}
		if n := proxy.Count(http.MethodGet, "/blobs/"+dg.String()); n != 1 {
			t.Errorf("blob %s: %d GETs from the registry, want 1", dg, n)
		}
	}
	if t.Failed() {
		for _, r := range proxy.Requests() {
			t.Logf("%s %s range %q: %d, %d bytes", r.Method, r.Path, r.Range, r.Status, r.Bytes)
		}
	}

	rows := servertest.CtrTable(t, d.Ctr(t, ns, "images", "ls"))
	if len(rows) != 1 || rows[0]["REF"] != ref || rows[0]["DIGEST"] != root {
		t.Fatalf("ctr images ls after %d pulls = %v, want %s at %s", pulls, rows, ref, root)
	}
	ctrCheckComplete(t, d, ns, ref, root, 4)
	if got, want := ctrBlobs(t, d, ns), fixtureBlobs(fix); !sameMap(got, want) {
		t.Fatalf("ctr content ls after %d pulls = %v, want the fixture's %v", pulls, got, want)
	}
	if active := servertest.CtrContentRows(t, d.Ctr(t, ns, "content", "active")); len(active) != 0 {
		t.Fatalf("ingests left after %d pulls: %v", pulls, active)
	}
	if rows := servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "ls")); len(rows) != 3 {
		t.Fatalf("ctr snapshots ls after %d pulls = %v, want the 3 layers", pulls, rows)
	}
}

// TestCtrImagesMountMatchesStore compares two unpackings of one image: ctr
// unpacks it through the diff and snapshots services into overlayfs and
// mounts it (ctr images mount); strata's own unpacker (pull.Unpack, what
// strata images mount uses) unpacks the same blobs into the native
// snapshotter, seen through a view. Both trees must be the fixture's.
func TestCtrImagesMountMatchesStore(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushWhiteoutImage(t, reg.Host, "e2e/mount", "v1")
	d := servertest.Start(t)
	if d.Store.OverlayUnavailable != nil {
		t.Fatalf("overlayfs unavailable under the daemon's root: %v", d.Store.OverlayUnavailable)
	}
	const ns = "e2e"
	d.Ctr(t, ns, "images", "pull", "--plain-http", fix.Ref)

	target := t.TempDir()
	t.Cleanup(func() {
		if err := mount.UnmountUnder(target); err != nil {
			t.Error(err)
		}
	})
	d.Ctr(t, ns, "images", "mount", fix.Ref, target)
	viaCtr := testutil.ReadTree(t, target)
	d.Ctr(t, ns, "images", "unmount", "--rm", target)

	ctx := namespaces.WithNamespace(context.Background(), ns)
	l, err := d.Store.DB.Leases().Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Store.DB.Leases().Delete(ctx, l); err != nil {
			t.Error(err)
		}
	})
	ctx = leases.WithLease(ctx, l.ID)
	img, err := d.Store.DB.Images().Get(ctx, fix.Ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := images.Manifest(ctx, d.Store.DB.ContentStore(), img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	top, err := pull.Unpack(ctx, d.Store, desc, "native", nil)
	if err != nil {
		t.Fatalf("unpack %s into native: %v", fix.Ref, err)
	}
	if chain := fixtureChain(t, fix); top != chain[len(chain)-1] {
		t.Fatalf("pull.Unpack top = %s, want the image's chain ID %s", top, chain[len(chain)-1])
	}
	sn := d.Store.Snapshotter("native")
	mounts, err := sn.View(ctx, "strata-view", top.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sn.Remove(ctx, "strata-view"); err != nil {
			t.Error(err)
		}
	})
	var viaStrata map[string]testutil.TreeEntry
	if err := mount.WithTempMount(ctx, mounts, func(root string) error {
		viaStrata = testutil.ReadTree(t, root)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if diffs := testutil.DiffTrees(viaStrata, viaCtr); len(diffs) > 0 {
		t.Errorf("ctr images mount (overlayfs, unpacked by ctr) differs from strata's native unpack:\n%s", strings.Join(diffs, "\n"))
	}
	if diffs := testutil.DiffTrees(fix.Tree, viaStrata); len(diffs) > 0 {
		t.Errorf("strata's native unpack differs from the fixture:\n%s", strings.Join(diffs, "\n"))
	}
	if diffs := testutil.DiffTrees(fix.Tree, viaCtr); len(diffs) > 0 {
		t.Errorf("ctr images mount differs from the fixture:\n%s", strings.Join(diffs, "\n"))
	}
}

// TestCtrContentGetAndSnapshotUsage checks the bytes ctr content get
// streams and the numbers ctr snapshots usage prints against the store.
func TestCtrContentGetAndSnapshotUsage(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fix := testutil.PushRandomImage(t, reg.Host, "e2e/usage", "v1", 3, 1<<20+17)
	d := servertest.Start(t)
	if d.Store.OverlayUnavailable != nil {
		t.Fatalf("overlayfs unavailable under the daemon's root: %v", d.Store.OverlayUnavailable)
	}
	const ns = "e2e"
	d.Ctr(t, ns, "images", "pull", "--plain-http", fix.Ref)

	// ctr content get streams the first digest it is given only.
	for dg, b := range fix.Blobs {
		if got := d.CtrIn(t, ns, nil, "content", "get", dg.String()); got != string(b) {
			t.Errorf("ctr content get %s: %d bytes, differ from the registry's %d", dg, len(got), len(b))
		}
	}

	// An active snapshot on top of the image, with a file of its own.
	chain := fixtureChain(t, fix)
	d.Ctr(t, ns, "snapshots", "prepare", "work", chain[len(chain)-1].String())
	d.WriteInto(t, ns, "work", "extra", strings.Repeat("x", 5000))

	ctx := namespaces.WithNamespace(context.Background(), ns)
	sn := d.Store.Snapshotter("overlayfs")
	want2 := map[string]snapshots.Usage{}
	if err := sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if err != nil {
			return err
		}
		want2[info.Name] = u
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want2) != 4 {
		t.Fatalf("%d snapshots in the store, want 3 layers and work: %v", len(want2), want2)
	}
	rows := servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "usage", "-b"))
	if len(rows) != len(want2) {
		t.Fatalf("ctr snapshots usage -b = %v, want %d rows", rows, len(want2))
	}
	for _, r := range rows {
		u, ok := want2[r["KEY"]]
		if !ok {
			t.Errorf("ctr snapshots usage lists %q, which the store has not", r["KEY"])
			continue
		}
		if r["SIZE"] != strconv.FormatInt(u.Size, 10) || r["INODES"] != strconv.FormatInt(u.Inodes, 10) {
			t.Errorf("ctr snapshots usage %s: size %s, inodes %s; the store's Usage = %+v", r["KEY"], r["SIZE"], r["INODES"], u)
		}
	}
	// The layers hold their random file; work holds its 5000 bytes.
	for i, c := range chain {
		if u := want2[c.String()]; u.Size < 1<<20+17 {
			t.Errorf("usage of layer %d (%s) = %+v, want at least its %d byte file", i, c, u, 1<<20+17)
		}
	}
	if u := want2["work"]; u.Size < 5000 || u.Inodes < 1 {
		t.Errorf("usage of the active snapshot = %+v, want its 5000 byte file", u)
	}
	// One key at a time too.
	rows = servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "usage", "-b", "work"))
	if len(rows) != 1 || rows[0]["KEY"] != "work" || rows[0]["SIZE"] != strconv.FormatInt(want2["work"].Size, 10) {
		t.Errorf("ctr snapshots usage -b work = %v, want the store's %+v", rows, want2["work"])
	}
	d.Ctr(t, ns, "snapshots", "rm", "work")
}
