// Package archivetest is the round-trip suite every image archive format
// passes (archive/ocilayout, archive/dockerarchive), as content/contenttest
// is for content stores: images built in code are exported from one real
// store and imported into a fresh one, and what comes back is checked
// with images.Check, before and after a garbage collection:
//
//	source store ── Export ──▶ archive ── Import ──▶ fresh store
//	                                                 │ images.Check: complete for what was exported
//	                                                 │ same target digests, names, platforms (as the format keeps them)
//	                                                 │ GC keeps it all (import's labels are right)
//	                                                 └ no lease, ingest or temp file left behind
//
// Formats differ in what they keep; Format's capability flags say which,
// and the tests check each format for what it claims.
package archivetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/wiring"
)

// ExportOptions are what the suite asks of an export.
type ExportOptions struct {
	// AllPlatforms writes the layers of every platform; otherwise only
	// the host's (the default of both formats).
	AllPlatforms bool
}

// ImportOptions are what the suite asks of an import.
type ImportOptions struct {
	// BaseName names what the archive leaves unnamed (BaseName@<digest>).
	BaseName string
	// AllPlatforms requires every platform in the archive.
	AllPlatforms bool
}

// Format is one archive format under test and what it keeps.
type Format struct {
	// Export writes imgs, read from cs, as an archive to w.
	Export func(ctx context.Context, w io.Writer, cs content.Provider, imgs []images.Image, o ExportOptions) error
	// Import reads the archive r into st and returns the images recorded.
	Import func(ctx context.Context, r io.Reader, st *wiring.Store, o ImportOptions) ([]images.Image, error)
	// KeepsIndex is true when an image whose target is an index comes back
	// with that index as its target, every manifest and config of it, and
	// its attestation manifests (OCI image layout). Otherwise the archive
	// holds one platform per image and the image comes back with that
	// platform's manifest as its target (docker save).
	KeepsIndex bool
	// AllPlatforms is true when the format can carry the layers of every
	// platform of an index.
	AllPlatforms bool
	// Legacy is true when the archive has a second layout without
	// index.json (docker save before Docker 25: manifest.json alone),
	// from which the import builds each image's manifest.
	Legacy bool
}

// Run runs the suite over f. Each test opens its stores under t.TempDir,
// with TMPDIR pointing at an empty directory that must stay empty.
func Run(t *testing.T, f Format) {
	tests := []struct {
		name string
		fn   func(*env)
		need func(Format) bool
	}{
		{name: "Manifest", fn: testManifest},
		{name: "IndexHostPlatform", fn: testIndexHost},
		{name: "IndexAllPlatforms", fn: testIndexAll, need: func(f Format) bool { return f.AllPlatforms }},
		{name: "SeveralNames", fn: testSeveralNames},
		{name: "SharedLayers", fn: testSharedLayers},
		{name: "DuplicateName", fn: testDuplicateName},
		{name: "NamedByDigestOnly", fn: testDigestName},
		{name: "Nameless", fn: testNameless},
		{name: "ImportTwice", fn: testImportTwice},
		{name: "Retarget", fn: testRetarget},
		{name: "RepeatedLayer", fn: testRepeatedLayer},
		{name: "NoLayers", fn: testNoLayers},
		{name: "Compressions", fn: testCompressions},
		{name: "DockerMediaTypes", fn: testDockerMediaTypes},
		{name: "NestedIndex", fn: testNestedIndex},
		{name: "TruncatedArchive", fn: testTruncated},
		{name: "CorruptBlob", fn: testCorruptBlob},
		{name: "FailedImportKeepsStore", fn: testFailedImportKeepsStore},
		{name: "AllPlatformsRequired", fn: testAllPlatformsRequired, need: func(f Format) bool { return f.KeepsIndex }},
		{name: "ConcurrentImports", fn: testConcurrentImports},
		{name: "OtherNamespace", fn: testOtherNamespace},
		{name: "ReExport", fn: testReExport},
		{name: "EntryOrder", fn: testEntryOrder},
		{name: "LargeLayer", fn: testLargeLayer},
		{name: "CompressedArchive", fn: testCompressedArchive},
		{name: "LegacyLayout", fn: testLegacyLayout, need: func(f Format) bool { return f.Legacy }},
		{name: "LegacyPaths", fn: testLegacyPaths, need: func(f Format) bool { return f.Legacy }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.need != nil && !tc.need(f) {
				// Declared by the format, not skipped silently: the
				// test name says what it lacks.
				t.Logf("format does not claim %s", tc.name)
				return
			}
			tc.fn(newEnv(t, f))
		})
	}
}

// env is one test: a source store, the format, and a temp dir to watch.
type env struct {
	t   *testing.T
	ctx context.Context
	f   Format
	src *wiring.Store
	// srcCtx writes the fixtures under a lease of the source store: they
	// carry no GC labels, and a collection there (after a test removes an
	// image) must not take them.
	srcCtx context.Context
	tmp    string
	// seed makes every blob of a test distinct unless made alike.
	seed int
}

func newEnv(t *testing.T, f Format) *env {
	// The first TempDir fixes the parent of the later ones (the stores'
	// roots), before TMPDIR moves.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "archivetest"), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, f: f, tmp: tmp}
	e.src = e.open()
	l, err := e.src.DB.Leases().Create(ctx, leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.srcCtx = leases.WithLease(ctx, l.ID)
	return e
}

// open opens a fresh store, closed at cleanup.
func (e *env) open() *wiring.Store {
	e.t.Helper()
	// Beside TMPDIR, not in it (newEnv): that one must stay empty.
	st, err := wiring.Open(context.Background(), wiring.Config{Root: e.t.TempDir()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := st.Close(); err != nil {
			e.t.Error(err)
		}
	})
	return st
}

// host and other are the host's platform and one that is not.
func host() ocispec.Platform { return images.DefaultPlatform() }

func other() ocispec.Platform {
	if host().Architecture == "s390x" {
		return ocispec.Platform{OS: "linux", Architecture: "ppc64le"}
	}
	return ocispec.Platform{OS: "linux", Architecture: "s390x"}
}

// blob writes b into the source store and returns its descriptor.
func (e *env) blob(mediaType string, b []byte) ocispec.Descriptor {
	e.t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(e.srcCtx, e.src.DB.ContentStore(), "archivetest-"+desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
		e.t.Fatalf("write blob %s: %v", desc.Digest, err)
	}
	return desc
}

func (e *env) json(mediaType string, v any) ocispec.Descriptor {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.blob(mediaType, b)
}

// layer is a gzip layer and its diff ID.
type layer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// newLayer makes a layer of a file whose body is unique to this test and
// call.
func (e *env) newLayer(name string) layer {
	e.t.Helper()
	e.seed++
	raw := tartest.Tar(tartest.Dir("etc/"), tartest.File("etc/"+name, fmt.Sprintf("%s %s %d\n", e.t.Name(), name, e.seed)))
	return layer{desc: e.blob(ocispec.MediaTypeImageLayerGzip, tartest.Gzip(raw)), diffID: digest.FromBytes(raw)}
}

// manifest writes an image manifest of layers for p and returns its
// descriptor, platform set.
func (e *env) manifest(p ocispec.Platform, layers ...layer) ocispec.Descriptor {
	e.t.Helper()
	e.seed++
	cfg := ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers"},
		Config: ocispec.ImageConfig{Env: []string{fmt.Sprintf("SEED=%d", e.seed)}}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, l.desc)
	}
	m.Config = e.json(ocispec.MediaTypeImageConfig, cfg)
	desc := e.json(ocispec.MediaTypeImageManifest, m)
	desc.Platform = &p
	return desc
}

// attestation writes a BuildKit attestation manifest for the manifest of.
func (e *env) attestation(of ocispec.Descriptor) ocispec.Descriptor {
	e.t.Helper()
	e.seed++
	statement := e.blob("application/vnd.in-toto+json", fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v0.1","seed":%d}`, e.seed))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: e.blob(ocispec.MediaTypeImageConfig, []byte("{}")), Layers: []ocispec.Descriptor{statement}}
	desc := e.json(ocispec.MediaTypeImageManifest, m)
	desc.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	desc.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": of.Digest.String()}
	return desc
}

// index writes an image index of manifests.
func (e *env) index(manifests ...ocispec.Descriptor) ocispec.Descriptor {
	e.t.Helper()
	return e.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests})
}

// image records target under name in the source store.
func (e *env) image(name string, target ocispec.Descriptor) images.Image {
	e.t.Helper()
	target.Platform = nil // as a pull records it
	img, err := e.src.DB.Images().Create(e.ctx, images.Image{Name: name, Target: target})
	if err != nil {
		e.t.Fatalf("record image %s: %v", name, err)
	}
	return img
}

// multiPlatform records an index of the host's platform, another one and
// an attestation of the host's manifest; the two platforms share their
// base layer.
func (e *env) multiPlatform(name string) images.Image {
	e.t.Helper()
	base := e.newLayer("base")
	hm := e.manifest(host(), base, e.newLayer("host"))
	om := e.manifest(other(), base, e.newLayer("other"))
	return e.image(name, e.index(hm, om, e.attestation(hm)))
}

// export writes imgs with the format.
func (e *env) export(o ExportOptions, imgs ...images.Image) []byte {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.f.Export(e.ctx, &buf, e.src.DB.ContentStore(), imgs, o); err != nil {
		e.t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

// importInto imports b into dst and checks that it left nothing behind.
func (e *env) importInto(dst *wiring.Store, b []byte, o ImportOptions) []images.Image {
	e.t.Helper()
	imgs, err := e.f.Import(e.ctx, bytes.NewReader(b), dst, o)
	if err != nil {
		e.t.Fatalf("Import: %v", err)
	}
	e.noLeaks(dst)
	return imgs
}

// noLeaks fails when an import left a lease, an ingest or a temp file.
func (e *env) noLeaks(st *wiring.Store) {
	e.t.Helper()
	ls, err := st.DB.Leases().List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		e.t.Errorf("lease %s left behind (labels %v)", l.ID, l.Labels)
	}
	sts, err := st.DB.ContentStore().ListStatuses(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range sts {
		e.t.Errorf("ingest %q left behind (%d bytes)", s.Ref, s.Offset)
	}
	// Below the namespaces: an ingest the metadata store lost track of.
	sts, err = st.Blobs.ListStatuses(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range sts {
		e.t.Errorf("ingest %q left in the blob store (%d bytes)", s.Ref, s.Offset)
	}
	left, err := os.ReadDir(e.tmp)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range left {
		e.t.Errorf("%s left in TMPDIR", d.Name())
	}
}

// gc collects garbage in st, as after the import's lease is gone.
func (e *env) gc(st *wiring.Store) {
	e.t.Helper()
	if _, err := st.DB.GarbageCollect(e.ctx, metadata.GCOptions{}); err != nil {
		e.t.Fatalf("GarbageCollect: %v", err)
	}
}

// want is what an image should look like after the round trip.
type want struct {
	name   string
	target ocispec.Descriptor
	// complete are the platforms whose every blob must be there;
	// present the blobs (indexes, manifests, configs, layers) that must
	// be, whatever their platform.
	complete []ocispec.Platform
	present  []digest.Digest
	// platforms are the platforms the target offers.
	platforms []ocispec.Platform
}

// expect says what the format keeps of src exported with o.
func (e *env) expect(src images.Image, all bool) want {
	e.t.Helper()
	cs := e.src.DB.ContentStore()
	w := want{name: src.Name, target: src.Target}
	if images.IsIndex(src.Target.MediaType) && !e.f.KeepsIndex {
		desc, _, err := images.Manifest(e.ctx, cs, src.Target, images.Only(host()))
		if err != nil {
			e.t.Fatal(err)
		}
		desc.Platform, desc.Annotations = nil, nil
		w.target = desc
	}
	ps, err := images.Platforms(e.ctx, cs, w.target)
	if err != nil {
		e.t.Fatal(err)
	}
	w.platforms = ps
	for _, p := range ps {
		if all || images.Only(host()).Match(p) {
			w.complete = append(w.complete, p)
		}
	}
	// Every index, manifest and config under the target, attestations
	// included, goes with an image that keeps its index; with all, every
	// blob.
	var walk func(desc ocispec.Descriptor)
	walk = func(desc ocispec.Descriptor) {
		w.present = append(w.present, desc.Digest)
		children, err := images.Children(e.ctx, cs, desc)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, c := range children {
			switch {
			case images.IsIndex(c.MediaType) || images.IsManifest(c.MediaType):
				walk(c)
			case images.IsManifest(desc.MediaType) && c.Digest == configOf(e, desc):
				w.present = append(w.present, c.Digest)
			case all:
				w.present = append(w.present, c.Digest)
			}
		}
	}
	walk(w.target)
	return w
}

func configOf(e *env, desc ocispec.Descriptor) digest.Digest {
	m, err := images.ReadManifest(e.ctx, e.src.DB.ContentStore(), desc)
	if err != nil {
		e.t.Fatal(err)
	}
	return m.Config.Digest
}

// check checks that dst holds each image as wanted, once as imported and
// again after a garbage collection.
func (e *env) check(dst *wiring.Store, got []images.Image, ws ...want) {
	e.t.Helper()
	e.checkOnce(dst, got, ws)
	e.gc(dst)
	e.checkOnce(dst, nil, ws)
}

func (e *env) checkOnce(dst *wiring.Store, got []images.Image, ws []want) {
	e.t.Helper()
	cs, is := dst.DB.ContentStore(), dst.DB.Images()
	if got != nil {
		var names, wantNames []string
		for _, img := range got {
			names = append(names, img.Name)
		}
		for _, w := range ws {
			wantNames = append(wantNames, w.name)
		}
		sort.Strings(names)
		sort.Strings(wantNames)
		if !slices.Equal(names, wantNames) {
			e.t.Errorf("Import returned images %q, want %q", names, wantNames)
		}
	}
	for _, w := range ws {
		img, err := is.Get(e.ctx, w.name)
		if err != nil {
			e.t.Errorf("image %s after import: %v", w.name, err)
			continue
		}
		if img.Target.Digest != w.target.Digest || img.Target.MediaType != w.target.MediaType || img.Target.Size != w.target.Size {
			e.t.Errorf("image %s: target %s %s (%d bytes), want %s %s (%d bytes)", w.name,
				img.Target.MediaType, img.Target.Digest, img.Target.Size, w.target.MediaType, w.target.Digest, w.target.Size)
			continue
		}
		sts, err := images.Check(e.ctx, cs, nil, img.Target)
		if err != nil {
			e.t.Errorf("images.Check(%s): %v", w.name, err)
			continue
		}
		for _, p := range w.complete {
			found := false
			for _, st := range sts {
				if images.Only(p).Match(st.Platform) && st.Platform.Architecture == p.Architecture {
					found = true
					if !st.Complete() {
						e.t.Errorf("image %s, %s: %d of %d blobs, missing %v", w.name, images.FormatPlatform(p), st.Present, st.Needed, st.Missing)
					}
				}
			}
			if !found {
				e.t.Errorf("image %s: images.Check has no %s; it has %v", w.name, images.FormatPlatform(p), platformNames(sts))
			}
		}
		for _, d := range w.present {
			if _, err := cs.Info(e.ctx, d); err != nil {
				e.t.Errorf("image %s: blob %s: %v", w.name, d, err)
			}
		}
		ps, err := images.Platforms(e.ctx, cs, img.Target)
		if err != nil {
			e.t.Errorf("platforms of %s: %v", w.name, err)
		} else if got, want := formatPlatforms(ps), formatPlatforms(w.platforms); !slices.Equal(got, want) {
			e.t.Errorf("image %s offers %q, want %q", w.name, got, want)
		}
	}
}

func platformNames(sts []images.PlatformStatus) []string {
	var out []string
	for _, st := range sts {
		out = append(out, images.FormatPlatform(st.Platform))
	}
	return out
}

func formatPlatforms(ps []ocispec.Platform) []string {
	var out []string
	for _, p := range ps {
		out = append(out, images.FormatPlatform(p))
	}
	sort.Strings(out)
	return out
}
