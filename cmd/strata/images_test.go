package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/wiring"
)

// withStore opens the CLI's root in the test process (no strata command
// may run meanwhile: one process holds a root) and closes it after fn.
func withStore(t *testing.T, c *cli, fn func(ctx context.Context, s *wiring.Store)) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if c.daemon != nil {
		fn(ctx, c.daemon.Store) // the daemon's, open in this process
		return
	}
	s, err := wiring.Open(ctx, wiring.Config{Root: c.root})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	fn(ctx, s)
}

// writeBlob stores b (JSON-encoded unless it is []byte) and returns its
// descriptor.
func writeBlob(t *testing.T, ctx context.Context, cs content.Store, mediaType string, v any, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, cs, "test-"+desc.Digest.Encoded(), bytes.NewReader(b), desc, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	return desc
}

// fixtureImage is an image written by writeImages.
type fixtureImage struct {
	name     string
	target   ocispec.Descriptor
	manifest ocispec.Descriptor
	// blobs are the sizes of all its blobs in the store.
	blobs map[digest.Digest]int64
}

func (f fixtureImage) size() int64 {
	var n int64
	for _, s := range f.blobs {
		n += s
	}
	return n
}

// otherPlatform is a platform that is not the host's.
func otherPlatform() ocispec.Platform {
	if images.DefaultPlatform().Architecture == "s390x" {
		return ocispec.Platform{OS: "linux", Architecture: "ppc64le"}
	}
	return ocispec.Platform{OS: "linux", Architecture: "s390x"}
}

// The fixture's layers: a base both images share, and one on top for each.
var (
	layerBase = tartest.Tar(tartest.Dir("etc/"), tartest.File("etc/hello", "hi"), tartest.File("etc/keep", "keep me"))
	layerApp  = tartest.Tar(tartest.File("etc/.wh.hello", ""), tartest.Dir("usr/"), tartest.File("usr/new", "new file"))
	layerOpt  = tartest.Tar(tartest.Dir("opt/"), tartest.File("opt/x", "twelve bytes"))
)

// writeImages writes two images sharing their base layer, for the host's
// platform:
//
//	127.0.0.1:5000/app:1      manifest → config, [base, app]           label team=a
//	docker.io/library/base:2  index → manifest → config, [base, opt]
//	                                → manifest for otherPlatform(), not fetched
func writeImages(t *testing.T, ctx context.Context, s *wiring.Store) (app, base fixtureImage) {
	t.Helper()
	cs := s.DB.ContentStore()
	host := images.DefaultPlatform()
	layer := func(f *fixtureImage, tarball []byte) (ocispec.Descriptor, digest.Digest) {
		d := writeBlob(t, ctx, cs, ocispec.MediaTypeImageLayerGzip, tartest.Gzip(tarball), nil)
		f.blobs[d.Digest] = d.Size
		return d, digest.FromBytes(tarball)
	}
	image := func(f *fixtureImage, tarballs ...[]byte) {
		var layers []ocispec.Descriptor
		var diffIDs []digest.Digest
		for _, tb := range tarballs {
			d, id := layer(f, tb)
			layers = append(layers, d)
			diffIDs = append(diffIDs, id)
		}
		cfg := writeBlob(t, ctx, cs, ocispec.MediaTypeImageConfig, ocispec.Image{
			Platform: host,
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		}, nil)
		f.blobs[cfg.Digest] = cfg.Size
		// Labelled as a pull labels them: GC follows labels only.
		refs := map[string]string{"containerd.io/gc.ref.content.config": cfg.Digest.String()}
		for i, l := range layers {
			refs[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
		}
		f.manifest = writeBlob(t, ctx, cs, ocispec.MediaTypeImageManifest, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers,
		}, refs)
		f.blobs[f.manifest.Digest] = f.manifest.Size
	}

	app = fixtureImage{name: "127.0.0.1:5000/app:1", blobs: map[digest.Digest]int64{}}
	image(&app, layerBase, layerApp)
	app.target = app.manifest

	base = fixtureImage{name: "docker.io/library/base:2", blobs: map[digest.Digest]int64{}}
	image(&base, layerBase, layerOpt)
	other := otherPlatform()
	m := base.manifest
	m.Platform = &host
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("not fetched"), Size: 500, Platform: &other}
	base.target = writeBlob(t, ctx, cs, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m, missing},
	}, map[string]string{"containerd.io/gc.ref.content.m.0": m.Digest.String(), "containerd.io/gc.ref.content.m.1": missing.Digest.String()})
	base.blobs[base.target.Digest] = base.target.Size

	for _, f := range []struct {
		img    fixtureImage
		labels map[string]string
	}{{app, map[string]string{"team": "a"}}, {base, nil}} {
		if _, err := s.DB.Images().Create(ctx, images.Image{Name: f.img.name, Target: f.img.target, Labels: f.labels}); err != nil {
			t.Fatal(err)
		}
	}
	return app, base
}

// unpackFixture unpacks the image's manifest for the host into the
// snapshotter name, as a pull does.
func unpackFixture(t *testing.T, ctx context.Context, s *wiring.Store, name string, f fixtureImage, layers ...[]byte) {
	t.Helper()
	top, err := pull.Unpack(ctx, s, f.manifest, name, nil)
	if err != nil {
		t.Fatalf("unpack %s: %v", f.name, err)
	}
	if want := layerChain(layers...); top.String() != want[len(want)-1] {
		t.Fatalf("unpack %s = %s, want %s", f.name, top, want[len(want)-1])
	}
}

// layerChain returns the chain IDs of a stack of uncompressed layers.
func layerChain(layers ...[]byte) []string {
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, digest.FromBytes(l))
	}
	var out []string
	for _, id := range images.ChainIDs(diffIDs) {
		out = append(out, id.String())
	}
	return out
}

func TestImagesList(t *testing.T) {
	c := newCLI(t)
	var app, base fixtureImage
	withStore(t, c, func(ctx context.Context, s *wiring.Store) { app, base = writeImages(t, ctx, s) })

	if out := c.ok("images", "ls", "-q"); out != app.name+"\n"+base.name+"\n" {
		t.Fatalf("images ls -q = %q", out)
	}
	for _, tc := range []struct {
		filter string
		want   string
	}{
		{"labels.team==a", app.name + "\n"},
		{"name==" + base.name, base.name + "\n"},
		{`name~=^docker\.io/`, base.name + "\n"},
		{"target.mediatype==" + ocispec.MediaTypeImageIndex, base.name + "\n"},
		{"target.digest==" + app.target.Digest.String(), app.name + "\n"},
		{"labels.team==b", ""},
	} {
		if out := c.ok("i", "list", "-q", tc.filter); out != tc.want {
			t.Errorf("images ls -q %s = %q, want %q", tc.filter, out, tc.want)
		}
	}
	c.fails(2, `filters: parse "labels."`, "images", "ls", "labels.")

	var rows []struct {
		Name      string            `json:"name"`
		MediaType string            `json:"media_type"`
		Digest    string            `json:"digest"`
		Size      int64             `json:"size"`
		Platforms []string          `json:"platforms"`
		Labels    map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(c.ok("images", "ls", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	host, other := images.FormatPlatform(images.DefaultPlatform()), images.FormatPlatform(otherPlatform())
	if len(rows) != 2 {
		t.Fatalf("images ls -o json = %+v", rows)
	}
	// The size counts what is in the store: not the manifest of the
	// other platform.
	if r := rows[0]; r.Name != app.name || r.MediaType != ocispec.MediaTypeImageManifest || r.Digest != app.target.Digest.String() ||
		r.Size != app.size() || !slices.Equal(r.Platforms, []string{host}) || r.Labels["team"] != "a" {
		t.Errorf("images ls -o json [0] = %+v, want %s of %d bytes on %s", r, app.name, app.size(), host)
	}
	if r := rows[1]; r.Name != base.name || r.MediaType != ocispec.MediaTypeImageIndex || r.Digest != base.target.Digest.String() ||
		r.Size != base.size() || !slices.Equal(r.Platforms, []string{host, other}) || len(r.Labels) != 0 {
		t.Errorf("images ls -o json [1] = %+v, want %s of %d bytes on %s,%s", r, base.name, base.size(), host, other)
	}

	out := c.ok("images", "ls")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !slices.Equal(strings.Fields(lines[0]), []string{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"}) {
		t.Fatalf("images ls =\n%s", out)
	}
	want := [][]string{
		append([]string{app.name, ocispec.MediaTypeImageManifest, app.target.Digest.String()}, append(strings.Fields(humanSize(app.size())), host, "team=a")...),
		append([]string{base.name, ocispec.MediaTypeImageIndex, base.target.Digest.String()}, append(strings.Fields(humanSize(base.size())), host+","+other, "-")...),
	}
	for i, w := range want {
		if got := strings.Fields(lines[i+1]); !slices.Equal(got, w) {
			t.Errorf("images ls line %d = %q, want %q", i+1, got, w)
		}
	}
	if out := c.ok("-n", "other", "images", "ls", "-q"); out != "" {
		t.Fatalf("images ls in namespace other = %q", out)
	}
}

// availableSnapshotters lists the snapshotters a store has here: native
// always, overlayfs where the filesystem under the root allows it.
func availableSnapshotters(t *testing.T) []string {
	var names []string
	withStore(t, newCLI(t), func(ctx context.Context, s *wiring.Store) {
		for _, name := range snapshotterNames {
			if s.Snapshotter(name) != nil {
				names = append(names, name)
			}
		}
	})
	return names
}

// TestDiskUsage measures two images sharing their base layer, unpacked in
// each snapshotter, to the byte.
func TestDiskUsage(t *testing.T) {
	for _, name := range availableSnapshotters(t) {
		t.Run(name, func(t *testing.T) { testDiskUsage(t, name) })
	}
}

func testDiskUsage(t *testing.T, snapshotter string) {
	c := newCLI(t)
	var app, base fixtureImage
	const orphanSize = 1000
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		app, base = writeImages(t, ctx, s)
		unpackFixture(t, ctx, s, snapshotter, app, layerBase, layerApp)
		unpackFixture(t, ctx, s, snapshotter, base, layerBase, layerOpt)
		// Neither is reachable from an image: a blob and a snapshot
		// that gc.root labels keep.
		keep := map[string]string{labels.GCRoot: "yes"}
		orphan, _ := blob(t, orphanSize)
		writeBlob(t, ctx, s.DB.ContentStore(), "application/octet-stream", orphan, keep)
		sn := s.Snapshotter(snapshotter)
		mounts, err := sn.Prepare(ctx, "extra", "", snapshots.WithLabels(keep))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := diff.Apply(ctx, mounts, bytes.NewReader(tartest.Tar(tartest.File("z", "zzzzz"))), whiteoutModes[snapshotter]); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, "extra-committed", "extra", snapshots.WithLabels(keep)); err != nil {
			t.Fatal(err)
		}
	})

	// What each layer's snapshot holds: overlayfs keeps a layer's own
	// files, native a full copy of the tree.
	base0, appTop, optTop := int64(len("hi")+len("keep me")), int64(len("new file")), int64(len("twelve bytes"))
	if snapshotter == "native" {
		appTop += int64(len("keep me"))
		optTop += base0
	}
	var sharedBlobs int64
	for d, size := range app.blobs {
		if _, ok := base.blobs[d]; ok {
			sharedBlobs += size
		}
	}
	if want := int64(len(tartest.Gzip(layerBase))); sharedBlobs != want {
		t.Fatalf("fixture: images share %d bytes of blobs, want the base layer's %d", sharedBlobs, want)
	}

	type share struct{ Total, Shared, Unique int64 }
	type total struct {
		Count       int
		Size        int64
		Reclaimable int64
	}
	var rep struct {
		Images []struct {
			Name      string
			Blobs     share
			Snapshots share
		}
		Store struct{ Blobs, Snapshots total }
	}
	if err := json.Unmarshal([]byte(c.ok("du", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	wantApp := []share{{app.size(), sharedBlobs, app.size() - sharedBlobs}, {base0 + appTop, base0, appTop}}
	wantBase := []share{{base.size(), sharedBlobs, base.size() - sharedBlobs}, {base0 + optTop, base0, optTop}}
	if len(rep.Images) != 2 || rep.Images[0].Name != app.name || rep.Images[1].Name != base.name {
		t.Fatalf("du -o json images = %+v", rep.Images)
	}
	for i, want := range [][]share{wantApp, wantBase} {
		if got := rep.Images[i]; got.Blobs != want[0] || got.Snapshots != want[1] {
			t.Errorf("du %s: blobs %+v snapshots %+v, want %+v and %+v", got.Name, got.Blobs, got.Snapshots, want[0], want[1])
		}
	}
	wantBlobs := total{Count: len(app.blobs) + len(base.blobs) - 1 + 1, Size: app.size() + base.size() - sharedBlobs + orphanSize, Reclaimable: orphanSize}
	wantSnapshots := total{Count: 4, Size: base0 + appTop + optTop + 5, Reclaimable: 5}
	if rep.Store.Blobs != wantBlobs || rep.Store.Snapshots != wantSnapshots {
		t.Errorf("du store = blobs %+v snapshots %+v, want %+v and %+v", rep.Store.Blobs, rep.Store.Snapshots, wantBlobs, wantSnapshots)
	}

	// One image by its short name; shares are still against all images.
	out := c.ok("du", "-b", "base:2")
	lines := strings.Split(out, "\n")
	if len(lines) < 6 || !slices.Equal(strings.Fields(lines[0]), []string{"REF", "BLOBS", "SHARED", "UNIQUE", "SNAPSHOTS", "SHARED", "UNIQUE", "DISCARDED"}) {
		t.Fatalf("du -b base:2 =\n%s", out)
	}
	row := func(xs ...any) []string {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprint(x))
		}
		return s
	}
	if got, want := strings.Fields(lines[1]), row(base.name, wantBase[0].Total, wantBase[0].Shared, wantBase[0].Unique,
		wantBase[1].Total, wantBase[1].Shared, wantBase[1].Unique, "-"); !slices.Equal(got, want) {
		t.Errorf("du -b base:2 image row = %q, want %q", got, want)
	}
	if !strings.Contains(out, "\nTYPE ") {
		t.Errorf("du -b base:2 has no totals:\n%s", out)
	}
	for _, want := range [][]string{
		row("blobs", wantBlobs.Count, wantBlobs.Size, wantBlobs.Reclaimable),
		row("snapshots", wantSnapshots.Count, wantSnapshots.Size, wantSnapshots.Reclaimable),
	} {
		found := false
		for _, l := range lines {
			found = found || slices.Equal(strings.Fields(l), want)
		}
		if !found {
			t.Errorf("du -b base:2 has no line %q:\n%s", want, out)
		}
	}
	c.fails(1, `image "nope" (docker.io/library/nope:latest) in namespace "default": not found`, "du", "nope")

	// The other namespace has nothing, and its du says so.
	if err := json.Unmarshal([]byte(c.ok("-n", "other", "du", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) != 0 || rep.Store.Blobs != (total{}) || rep.Store.Snapshots != (total{}) {
		t.Errorf("du in namespace other = %+v", rep)
	}
}

// mountinfoHas reports whether /proc/self/mountinfo has a mount on dir.
func mountinfoHas(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// mountTarget makes a directory to mount on and unmounts whatever is left
// on it when the test ends, before the directory is removed.
func mountTarget(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mount.UnmountAll(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

func TestImagesMount(t *testing.T) {
	c := newCLI(t)
	var app, base fixtureImage
	withStore(t, c, func(ctx context.Context, s *wiring.Store) { app, base = writeImages(t, ctx, s) })

	// Read-only, unpacking on the way: the whiteout of the second layer
	// hides etc/hello.
	dir := mountTarget(t)
	if out := c.ok("images", "mount", app.name, dir); out != dir+"\n" {
		t.Fatalf("images mount printed %q, want %q", out, dir+"\n")
	}
	if !mountinfoHas(t, dir) {
		t.Fatalf("%s is not in /proc/self/mountinfo after images mount", dir)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc", "hello")); !os.IsNotExist(err) {
		t.Errorf("etc/hello in the mounted image: %v, want it whited out", err)
	}
	for path, want := range map[string]string{"etc/keep": "keep me", "usr/new": "new file"} {
		if got, err := os.ReadFile(filepath.Join(dir, path)); err != nil || string(got) != want {
			t.Errorf("%s in the mounted image = %q, %v; want %q", path, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "x"), nil, 0o644); err == nil {
		t.Error("wrote into a read-only image mount")
	}
	key := mountKeyPrefix + dir
	var rows []struct {
		Name   string            `json:"name"`
		Parent string            `json:"parent"`
		Kind   string            `json:"kind"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(c.ok("snapshots", "ls", "-o", "json", "name=="+key)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Kind != "view" || rows[0].Labels[labels.GCRoot] == "" || rows[0].Labels[labels.MountImage] != app.name {
		t.Fatalf("snapshot of the mount = %+v, want a view labelled gc.root and %s", rows, app.name)
	}
	c.fails(1, dir+" is already a strata mount", "images", "mount", base.name, dir)

	// Unmounting keeps the snapshot until --rm.
	if out := c.ok("images", "unmount", dir); out != dir+"\n" {
		t.Fatalf("images unmount printed %q", out)
	}
	if mountinfoHas(t, dir) {
		t.Fatalf("%s still mounted after images unmount", dir)
	}
	if out := c.ok("snapshots", "ls", "-q", "name=="+key); out != key+"\n" {
		t.Fatalf("snapshot after unmount without --rm: %q", out)
	}
	c.fails(1, "of an earlier mount", "images", "mount", app.name, dir)
	c.ok("images", "umount", "--rm", dir)
	if out := c.ok("snapshots", "ls", "-q", "kind==view"); out != "" {
		t.Fatalf("views after unmount --rm: %q", out)
	}

	// Writable: the writes land in the mount's own snapshot.
	rwDir := mountTarget(t)
	if out := c.ok("images", "mount", "--rw", "base:2", rwDir); out != rwDir+"\n" {
		t.Fatalf("images mount --rw printed %q", out)
	}
	if got, err := os.ReadFile(filepath.Join(rwDir, "opt", "x")); err != nil || string(got) != "twelve bytes" {
		t.Errorf("opt/x in the mounted image = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(rwDir, "opt", "written"), []byte("written through the mount"), 0o644); err != nil {
		t.Fatalf("write into a --rw mount: %v", err)
	}
	c.ok("images", "unmount", rwDir)
	rwKey := mountKeyPrefix + rwDir
	var mounts []struct {
		Type    string   `json:"type"`
		Source  string   `json:"source"`
		Options []string `json:"options"`
	}
	if err := json.Unmarshal([]byte(c.ok("snapshots", "mounts", "-o", "json", "/unused", rwKey)), &mounts); err != nil {
		t.Fatal(err)
	}
	writable := ""
	for _, m := range mounts {
		writable = m.Source
		for _, o := range m.Options {
			if up, ok := strings.CutPrefix(o, "upperdir="); ok {
				writable = up
			}
		}
	}
	if got, err := os.ReadFile(filepath.Join(writable, "opt", "written")); err != nil || string(got) != "written through the mount" {
		t.Errorf("opt/written in the snapshot's directory %s = %q, %v", writable, got, err)
	}
	c.ok("images", "unmount", "--rm", rwDir)

	// The native snapshotter carries the whiteout out on its copy.
	nativeDir := mountTarget(t)
	c.ok("images", "mount", "--snapshotter", "native", app.name, nativeDir)
	if _, err := os.Lstat(filepath.Join(nativeDir, "etc", "hello")); !os.IsNotExist(err) {
		t.Errorf("etc/hello in the image mounted from native: %v, want it whited out", err)
	}
	if got, err := os.ReadFile(filepath.Join(nativeDir, "usr", "new")); err != nil || string(got) != "new file" {
		t.Errorf("usr/new in the image mounted from native = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(nativeDir, "x"), nil, 0o644); err == nil {
		t.Error("wrote into a read-only image mount from native")
	}
	c.ok("images", "unmount", "--rm", nativeDir)
	if mountinfoHas(t, rwDir) || mountinfoHas(t, dir) || mountinfoHas(t, nativeDir) {
		t.Fatal("mounts left in /proc/self/mountinfo after unmount --rm")
	}
	// Only the layers are left, and the collection that --rm ran kept
	// them: the images' configs hold them.
	appChain, baseChain := layerChain(layerBase, layerApp), layerChain(layerBase, layerOpt)
	left := append(slices.Clone(appChain), baseChain[1:]...) // the base layer once
	slices.Sort(left)
	if out := c.ok("snapshots", "ls", "-q"); out != strings.Join(left, "\n")+"\n" {
		t.Fatalf("snapshots after unmount --rm = %q, want the chain IDs %q", out, left)
	}
	slices.Sort(appChain)
	if out := c.ok("snapshots", "--snapshotter", "native", "ls", "-q"); out != strings.Join(appChain, "\n")+"\n" {
		t.Fatalf("native snapshots after unmount --rm = %q, want the chain IDs %q", out, appChain)
	}

	// Errors.
	other := images.FormatPlatform(otherPlatform())
	host := images.FormatPlatform(images.DefaultPlatform())
	nowhere := filepath.Join(t.TempDir(), "missing")
	for _, e := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"platform-not-fetched", []string{"images", "mount", "--platform", other, base.name, dir}, 1,
			"(" + other + ") is not in the content store"},
		{"platform-not-offered", []string{"images", "mount", "--platform", "linux/mips64", base.name, dir}, 1,
			"no manifest for linux/mips64; the image has " + host + ", " + other},
		{"bad-platform", []string{"images", "mount", "--platform", "linux/", base.name, dir}, 2, `parse platform "linux/"`},
		{"unknown-image", []string{"images", "mount", "nope:1", dir}, 1, `image "nope:1" (docker.io/library/nope:1) in namespace "default": not found`},
		{"no-dir", []string{"images", "mount", app.name, nowhere}, 1, "no such file or directory"},
		{"bad-snapshotter", []string{"images", "mount", "--snapshotter", "zfs", app.name, dir}, 2, `--snapshotter "zfs"`},
		{"unmount-not-ours", []string{"images", "unmount", dir}, 1, dir + " is not a strata mount"},
		{"mount-one-arg", []string{"images", "mount", app.name}, 2, "takes 2 argument(s), got 1"},
		{"unmount-no-arg", []string{"images", "unmount"}, 2, "takes 1 argument(s), got 0"},
		{"no-verb", []string{"images"}, 2, "needs a subcommand"},
	} {
		t.Run(e.name, func(t *testing.T) { c.fails(e.code, e.msg, e.args...) })
	}
	if mountinfoHas(t, dir) {
		t.Fatal("a failed mount left a mount behind")
	}
}
