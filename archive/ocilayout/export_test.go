package ocilayout_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// expEnv is a store that pulls from a registry of its own.
type expEnv struct {
	t   *testing.T
	ctx context.Context
	st  *wiring.Store
	reg *testutil.Registry
}

func newExpEnv(t *testing.T) *expEnv {
	t.Helper()
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	st, ctx := storetest.Open(t)
	return &expEnv{t: t, ctx: ctx, st: st, reg: reg}
}

// pull fetches ref without unpacking it: export needs the blobs only.
func (e *expEnv) pull(ref string, o pull.Options) images.Image {
	e.t.Helper()
	o.NoUnpack = true
	return storetest.Pull(e.t, e.ctx, e.st, ref, o)
}

func (e *expEnv) export(o ocilayout.ExportOptions, imgs ...images.Image) ([]byte, error) {
	var buf bytes.Buffer
	err := ocilayout.Export(e.ctx, &buf, e.st.DB.ContentStore(), imgs, o)
	return buf.Bytes(), err
}

func (e *expEnv) mustExport(o ocilayout.ExportOptions, imgs ...images.Image) expArchive {
	e.t.Helper()
	b, err := e.export(o, imgs...)
	if err != nil {
		e.t.Fatalf("Export: %v", err)
	}
	return expRead(e.t, b)
}

// expArchive is an exported archive, read back.
type expArchive struct {
	raw   []byte
	names []string // regular files, in archive order
	files map[string][]byte
}

// expRead reads an archive, failing on anything Export should never
// write: duplicate entries, entries other than directories and files,
// blobs whose content is not their name's digest.
func expRead(t *testing.T, b []byte) expArchive {
	t.Helper()
	a := expArchive{raw: b, files: map[string][]byte{}}
	seen := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if seen[hdr.Name] {
			t.Fatalf("archive has %s twice", hdr.Name)
		}
		seen[hdr.Name] = true
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			t.Fatalf("archive entry %s has type %q", hdr.Name, hdr.Typeflag)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		if dir := filepath.Dir(hdr.Name); !seen[dir+"/"] && dir != "." {
			t.Fatalf("archive has %s before its directory", hdr.Name)
		}
		if rest, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/"); ok {
			if got := digest.FromBytes(body); got.Encoded() != rest {
				t.Fatalf("blob %s has digest %s", hdr.Name, got)
			}
		}
		a.names = append(a.names, hdr.Name)
		a.files[hdr.Name] = body
	}
	return a
}

// blobs returns the digests of the archive's blobs.
func (a expArchive) blobs() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, name := range a.names {
		if rest, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			out[digest.NewDigestFromEncoded(digest.SHA256, rest)] = true
		}
	}
	return out
}

func (a expArchive) index(t *testing.T) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(a.files["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index.json: schemaVersion %d, mediaType %q", idx.SchemaVersion, idx.MediaType)
	}
	return idx
}

// checkLayout checks oci-layout and that the layout files come first.
func (a expArchive) checkLayout(t *testing.T) {
	t.Helper()
	if got := string(a.files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %q", got)
	}
	if len(a.names) < 2 || a.names[0] != "oci-layout" || a.names[1] != "index.json" {
		t.Fatalf("archive starts with %q, want oci-layout, index.json", a.names[:min(2, len(a.names))])
	}
}

// checkBlobs fails unless the archive's blobs are exactly want, with the
// fixture's bytes.
func (a expArchive) checkBlobs(t *testing.T, fx testutil.Fixture, want map[digest.Digest]bool) {
	t.Helper()
	got := a.blobs()
	for d := range want {
		if !got[d] {
			t.Errorf("archive lacks blob %s", d)
		}
	}
	for d := range got {
		if !want[d] {
			t.Errorf("archive has unexpected blob %s", d)
		}
	}
	for d := range got {
		if b, ok := fx.Blobs[d]; ok && !bytes.Equal(b, a.files["blobs/sha256/"+d.Encoded()]) {
			t.Errorf("blob %s differs from the fixture's", d)
		}
	}
}

// expFixtureManifests returns the fixture's manifests with their
// platforms.
func expFixtureManifests(t *testing.T, fx testutil.Fixture) []ocispec.Descriptor {
	t.Helper()
	if images.IsManifest(fx.Root.MediaType) {
		d := fx.Root
		d.Platform = &fx.Platforms[0]
		return []ocispec.Descriptor{d}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(fx.Blobs[fx.Root.Digest], &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests
}

// expWant returns the blobs an export of fx should hold: its root, every
// manifest and config, and the layers of the manifests whose platform
// keep accepts.
func expWant(t *testing.T, fx testutil.Fixture, keep func(ocispec.Platform) bool) map[digest.Digest]bool {
	t.Helper()
	want := map[digest.Digest]bool{fx.Root.Digest: true}
	for _, md := range expFixtureManifests(t, fx) {
		var m ocispec.Manifest
		if err := json.Unmarshal(fx.Blobs[md.Digest], &m); err != nil {
			t.Fatal(err)
		}
		want[md.Digest], want[m.Config.Digest] = true, true
		if keep(*md.Platform) {
			for _, l := range m.Layers {
				want[l.Digest] = true
			}
		}
	}
	return want
}

// expManifestFor returns the fixture's manifest for platform p.
func expManifestFor(t *testing.T, fx testutil.Fixture, p ocispec.Platform) ocispec.Descriptor {
	t.Helper()
	for _, md := range expFixtureManifests(t, fx) {
		if images.Any(p).Match(*md.Platform) {
			return md
		}
	}
	t.Fatalf("fixture %s has no manifest for %s", fx.Ref, images.FormatPlatform(p))
	return ocispec.Descriptor{}
}

func expIsHost(p ocispec.Platform) bool { return images.Any(images.DefaultPlatform()).Match(p) }

// expSkopeo runs Debian's skopeo, which reads archives independently of
// strata, with a temporary directory of the test's.
func expSkopeo(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo %q: %v\n%s", args, err, out)
	}
}

// expSkopeoManifest copies src (a skopeo image name) to a directory and
// returns the digest of the manifest it wrote.
func expSkopeoManifest(t *testing.T, src string, all bool) digest.Digest {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	args := []string{"copy", "-q"}
	if all {
		args = append(args, "--all")
	}
	expSkopeo(t, append(args, src, "dir:"+dir)...)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(b)
}

func expWriteFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExportPlatforms exports a multi-platform image pulled for the host
// only, then for all platforms.
func TestExportPlatforms(t *testing.T) {
	e := newExpEnv(t)
	fx := testutil.PushMultiPlatform(t, e.reg.Host, "exp/multi", "v1")
	img := e.pull(fx.Ref, pull.Options{})
	host := expManifestFor(t, fx, images.DefaultPlatform())

	a := e.mustExport(ocilayout.ExportOptions{}, img)
	a.checkLayout(t)
	a.checkBlobs(t, fx, expWant(t, fx, expIsHost))
	idx := a.index(t)
	want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: fx.Root.Digest, Size: fx.Root.Size,
		Annotations: map[string]string{ocispec.AnnotationRefName: "v1", ocilayout.AnnotationImageName: fx.Ref}}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != want.Digest || idx.Manifests[0].Size != want.Size ||
		idx.Manifests[0].MediaType != want.MediaType || !maps.Equal(idx.Manifests[0].Annotations, want.Annotations) {
		t.Fatalf("index.json manifests = %+v, want [%+v]", idx.Manifests, want)
	}
	// The small blobs come before the layers.
	var seenLayer bool
	for _, name := range a.names[2:] {
		isLayer := len(a.files[name]) > 0 && a.files[name][0] == 0x1f // gzip
		if seenLayer && !isLayer {
			t.Fatalf("%s comes after a layer: %q", name, a.names)
		}
		seenLayer = seenLayer || isLayer
	}
	// The same images give the same bytes.
	if again := e.mustExport(ocilayout.ExportOptions{}, img); !bytes.Equal(again.raw, a.raw) {
		t.Fatal("two exports of the same image differ")
	}
	// skopeo picks the host's manifest from the archive.
	p := expWriteFile(t, a.raw)
	if got := expSkopeoManifest(t, "oci-archive:"+p+":v1", false); got != host.Digest {
		t.Fatalf("skopeo copied manifest %s from the archive, want the host's %s", got, host.Digest)
	}

	// All platforms: the store lacks the others' layers, named per platform.
	b, err := e.export(ocilayout.ExportOptions{AllPlatforms: true}, img)
	if !errors.Is(err, errdefs.ErrNotFound) || len(b) != 0 {
		t.Fatalf("Export(all platforms) of a host-only pull = %d bytes, %v; want nothing written and not found", len(b), err)
	}
	for _, md := range expFixtureManifests(t, fx) {
		var m ocispec.Manifest
		json.Unmarshal(fx.Blobs[md.Digest], &m)
		for _, l := range m.Layers {
			// The host's layers are there; every other one is named.
			if named := strings.Contains(err.Error(), l.Digest.String()); named == expIsHost(*md.Platform) {
				t.Errorf("layer %s of %s named in the error: %v, want %v: %v", l.Digest, images.FormatPlatform(*md.Platform), named, !named, err)
			}
		}
		if !expIsHost(*md.Platform) && !strings.Contains(err.Error(), `image "`+fx.Ref+`" (`+images.FormatPlatform(*md.Platform)+")") {
			t.Errorf("error does not name the image and %s: %v", images.FormatPlatform(*md.Platform), err)
		}
	}
	if strings.Contains(err.Error(), "content digest") {
		t.Errorf("error speaks of content digests: %v", err)
	}
	// SkipMissing exports what is there.
	skipped := e.mustExport(ocilayout.ExportOptions{AllPlatforms: true, SkipMissing: true}, img)
	skipped.checkBlobs(t, fx, expWant(t, fx, expIsHost))

	// A platform the image lacks.
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	b, err = e.export(ocilayout.ExportOptions{Platforms: images.Any(s390x)}, img)
	if !errors.Is(err, errdefs.ErrNotFound) || len(b) != 0 || !strings.Contains(err.Error(), "no manifest for linux/s390x; the image has linux/amd64, linux/arm64/v8, linux/arm/v7") {
		t.Fatalf("Export(linux/s390x) = %d bytes, %v", len(b), err)
	}

	// Pulled for all platforms, it exports them all, or the ones asked for.
	img = e.pull(fx.Ref, pull.Options{AllPlatforms: true})
	all := e.mustExport(ocilayout.ExportOptions{AllPlatforms: true}, img)
	all.checkBlobs(t, fx, expWant(t, fx, func(ocispec.Platform) bool { return true }))
	armv7 := ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	arm := e.mustExport(ocilayout.ExportOptions{Platforms: images.Any(armv7)}, img)
	arm.checkBlobs(t, fx, expWant(t, fx, images.Any(armv7).Match))
	p = expWriteFile(t, all.raw)
	if got := expSkopeoManifest(t, "oci-archive:"+p+":v1", true); got != fx.Root.Digest {
		t.Fatalf("skopeo copy --all copied %s from the archive, want the index %s", got, fx.Root.Digest)
	}
}

// TestExportShared exports images that share blobs: each blob once.
func TestExportShared(t *testing.T) {
	e := newExpEnv(t)
	// The random fixture's layer i depends on i and the size only: both
	// images have the same first layer.
	fa := testutil.PushRandomImage(t, e.reg.Host, "exp/a", "a1", 1, 4096)
	fb := testutil.PushRandomImage(t, e.reg.Host, "exp/b", "b1", 2, 4096)
	a, b := e.pull(fa.Ref, pull.Options{}), e.pull(fb.Ref, pull.Options{})
	// A second name for a: its entry in index.json, no new blob.
	aliasName := e.reg.Host + "/exp/alias:latest"
	alias, err := e.st.DB.Images().Create(e.ctx, images.Image{Name: aliasName, Target: a.Target})
	if err != nil {
		t.Fatal(err)
	}

	ar := e.mustExport(ocilayout.ExportOptions{}, b, a, alias)
	want := expWant(t, fa, expIsHost)
	maps.Copy(want, expWant(t, fb, expIsHost))
	if len(want) != 6 {
		t.Fatalf("the fixtures have %d blobs, want 6 (they should share their first layer)", len(want))
	}
	all := maps.Clone(fa.Blobs)
	maps.Copy(all, fb.Blobs)
	ar.checkBlobs(t, testutil.Fixture{Blobs: all}, want)
	idx := ar.index(t)
	var got []string
	for _, m := range idx.Manifests {
		got = append(got, m.Annotations[ocilayout.AnnotationImageName]+" "+m.Annotations[ocispec.AnnotationRefName]+" "+m.Digest.String())
	}
	wantIdx := []string{fb.Ref + " b1 " + fb.Root.Digest.String(), fa.Ref + " a1 " + fa.Root.Digest.String(), aliasName + " latest " + fa.Root.Digest.String()}
	if !slices.Equal(got, wantIdx) {
		t.Fatalf("index.json entries = %q, want %q", got, wantIdx)
	}
	p := expWriteFile(t, ar.raw)
	for tag, d := range map[string]digest.Digest{"a1": fa.Root.Digest, "b1": fb.Root.Digest} {
		if got := expSkopeoManifest(t, "oci-archive:"+p+":"+tag, false); got != d {
			t.Errorf("skopeo copied %s for %s, want %s", got, tag, d)
		}
	}
}

// TestExportFormats: OCI and Docker manifests, zstd and uncompressed
// layers, each read back by skopeo.
func TestExportFormats(t *testing.T) {
	e := newExpEnv(t)
	fxs := []testutil.Fixture{
		testutil.PushWhiteoutImage(t, e.reg.Host, "exp/whiteout", "whiteout"),
		testutil.PushDockerSchema2(t, e.reg.Host, "exp/docker", "docker"),
		testutil.PushZstd(t, e.reg.Host, "exp/zstd", "zstd"),
	}
	var imgs []images.Image
	want := map[digest.Digest]bool{}
	all := map[digest.Digest][]byte{}
	for _, fx := range fxs {
		imgs = append(imgs, e.pull(fx.Ref, pull.Options{}))
		maps.Copy(want, expWant(t, fx, func(ocispec.Platform) bool { return true }))
		maps.Copy(all, fx.Blobs)
	}
	a := e.mustExport(ocilayout.ExportOptions{}, imgs...)
	a.checkLayout(t)
	a.checkBlobs(t, testutil.Fixture{Blobs: all}, want)
	p := expWriteFile(t, a.raw)
	for _, fx := range fxs {
		if !strings.HasPrefix(fx.Root.MediaType, "application/vnd.oci.") {
			// skopeo 1.9 looks up only OCI media types in index.json ("no
			// descriptor found"); containerd and strata read Docker ones,
			// which the archive keeps as they are: rewriting the type
			// would change the manifest's digest.
			continue
		}
		tag := fx.Ref[strings.LastIndex(fx.Ref, ":")+1:]
		if got := expSkopeoManifest(t, "oci-archive:"+p+":"+tag, false); got != fx.Root.Digest {
			t.Errorf("skopeo copied %s for %s, want %s", got, fx.Ref, fx.Root.Digest)
		}
	}
}

// TestExportErrors: what Export refuses, writing nothing.
func TestExportErrors(t *testing.T) {
	e := newExpEnv(t)
	fx := testutil.PushWhiteoutImage(t, e.reg.Host, "exp/app", "v1")
	img := e.pull(fx.Ref, pull.Options{})
	gone := images.Image{Name: "example.com/gone:1", Target: ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("gone"), Size: 4}}
	for _, tc := range []struct {
		name string
		imgs []images.Image
		is   error
		msg  string
	}{
		{"no-images", nil, errdefs.ErrInvalidArgument, "no images"},
		{"target-missing", []images.Image{img, gone}, errdefs.ErrNotFound, `image "example.com/gone:1": its target ` + gone.Target.Digest.String() + " is not in the content store"},
		{"not-an-image", []images.Image{{Name: "x", Target: ocispec.Descriptor{MediaType: "text/plain", Digest: fx.Root.Digest, Size: fx.Root.Size}}},
			errdefs.ErrInvalidArgument, "neither an index nor a manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := e.export(ocilayout.ExportOptions{}, tc.imgs...)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) || len(b) != 0 {
				t.Fatalf("Export = %d bytes, %v; want nothing written and %q (%v)", len(b), err, tc.msg, tc.is)
			}
		})
	}

	// A layer removed from the store: named with the image's platform.
	var m ocispec.Manifest
	json.Unmarshal(fx.Blobs[fx.Root.Digest], &m)
	layer := m.Layers[1].Digest
	if err := e.st.DB.ContentStore().Delete(e.ctx, layer); err != nil {
		t.Fatal(err)
	}
	b, err := e.export(ocilayout.ExportOptions{}, img)
	wantMsg := `image "` + fx.Ref + `" (linux/amd64): 1 blob is not in the content store (pulled without this platform?): layer ` + layer.String()
	if !errors.Is(err, errdefs.ErrNotFound) || len(b) != 0 || !strings.Contains(err.Error(), wantMsg) {
		t.Fatalf("Export without a layer = %d bytes, %v; want %q", len(b), err, wantMsg)
	}
	// A cancelled export stops.
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := ocilayout.Export(ctx, io.Discard, e.st.DB.ContentStore(), []images.Image{img}, ocilayout.ExportOptions{SkipMissing: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Export with a cancelled context = %v", err)
	}
}

// expCountingProvider counts what is read of each blob through it, and the
// largest single read of a layer.
type expCountingProvider struct {
	content.Provider
	mu       sync.Mutex
	read     map[digest.Digest]int64
	maxLayer int
}

func (c *expCountingProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := c.Provider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &expCountingReaderAt{ReaderAt: ra, c: c, desc: desc}, nil
}

type expCountingReaderAt struct {
	content.ReaderAt
	c    *expCountingProvider
	desc ocispec.Descriptor
}

func (r *expCountingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	r.c.read[r.desc.Digest] += int64(n)
	if images.IsLayer(r.desc.MediaType) {
		r.c.maxLayer = max(r.c.maxLayer, len(p))
	}
	return n, err
}

// TestExportStreams: every blob is read from the store once, and layers in
// bounded chunks, never whole.
func TestExportStreams(t *testing.T) {
	e := newExpEnv(t)
	const layerSize = 4 << 20
	fx := testutil.PushRandomImage(t, e.reg.Host, "exp/big", "v1", 2, layerSize)
	img := e.pull(fx.Ref, pull.Options{})
	cp := &expCountingProvider{Provider: e.st.DB.ContentStore(), read: map[digest.Digest]int64{}}
	var buf bytes.Buffer
	if err := ocilayout.Export(e.ctx, &buf, cp, []images.Image{img}, ocilayout.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	a := expRead(t, buf.Bytes())
	for d, b := range fx.Blobs {
		if got := cp.read[d]; got != int64(len(b)) {
			t.Errorf("blob %s: read %d bytes from the store, want its size %d once", d, got, len(b))
		}
		if !bytes.Equal(a.files["blobs/sha256/"+d.Encoded()], b) {
			t.Errorf("blob %s differs in the archive", d)
		}
	}
	if cp.maxLayer == 0 || cp.maxLayer > 1<<20 {
		t.Fatalf("largest read of a layer: %d bytes, want at most 1 MiB", cp.maxLayer)
	}
}
