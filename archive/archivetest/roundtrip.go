package archivetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/wiring"
)

// testManifest: an image whose target is a manifest, two layers.
func testManifest(e *env) {
	img := e.image("example.com/app:1", e.manifest(host(), e.newLayer("a"), e.newLayer("b")))
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{})
	e.check(dst, got, e.expect(img, true))
}

// testIndexHost: an index of two platforms and an attestation, exported
// for the host's platform: that one complete; with KeepsIndex the index,
// every manifest and config and the attestation too.
func testIndexHost(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	b := e.export(ExportOptions{}, img)
	w := e.expect(img, false)
	if e.f.KeepsIndex {
		// The attestation's manifest and config go with the index;
		// images.Check leaves attestations out, so look for them here.
		idx, err := images.ReadIndex(e.ctx, e.src.DB.ContentStore(), img.Target)
		if err != nil {
			e.t.Fatal(err)
		}
		att := idx.Manifests[2]
		if !slices.Contains(w.present, att.Digest) {
			e.t.Fatalf("expect: attestation manifest %s not among the blobs wanted %v", att.Digest, w.present)
		}
	}
	dst := e.open()
	got := e.importInto(dst, b, ImportOptions{})
	e.check(dst, got, w)
}

// testIndexAll: the same image with every platform's layers.
func testIndexAll(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{AllPlatforms: true}, img), ImportOptions{AllPlatforms: true})
	e.check(dst, got, e.expect(img, true))
}

// testSeveralNames: one image under three names and another image, in one
// archive.
func testSeveralNames(e *env) {
	target := e.manifest(host(), e.newLayer("a"))
	a := e.image("example.com/app:1", target)
	b := e.image("example.com/app:latest", target)
	c := e.image("registry.example.com:5000/team/app:1", target)
	d := e.image("example.com/other:2", e.multiPlatform("example.com/x:1").Target)
	imgs, ws := []images.Image{a, b, c, d}, []want{e.expect(a, true), e.expect(b, true), e.expect(c, true), e.expect(d, false)}
	for _, name := range oddNames {
		img := e.image(name, target)
		imgs, ws = append(imgs, img), append(ws, e.expect(img, true))
	}
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, imgs...), ImportOptions{})
	e.check(dst, got, ws...)
}

// testSharedLayers: two images on one base layer; the archive holds it
// once, and removing one image leaves the other whole after a collection.
func testSharedLayers(e *env) {
	base := e.newLayer("base")
	a := e.image("example.com/a:1", e.manifest(host(), base, e.newLayer("a")))
	b := e.image("example.com/b:1", e.manifest(host(), base, e.newLayer("b")))
	arc := e.export(ExportOptions{}, a, b)
	for d, n := range blobEntries(e.t, arc) {
		if n != 1 {
			e.t.Errorf("archive holds blob %s %d times", d, n)
		}
	}
	if n := blobEntries(e.t, arc)[base.desc.Digest]; n != 1 {
		e.t.Errorf("archive holds the shared layer %s %d times, want 1", base.desc.Digest, n)
	}
	dst := e.open()
	got := e.importInto(dst, arc, ImportOptions{})
	wb := e.expect(b, true)
	e.check(dst, got, e.expect(a, true), wb)
	if err := dst.DB.Images().Delete(e.ctx, a.Name); err != nil {
		e.t.Fatal(err)
	}
	e.gc(dst)
	e.checkOnce(dst, nil, []want{wb})
	if _, err := dst.DB.ContentStore().Info(e.ctx, base.desc.Digest); err != nil {
		e.t.Errorf("shared layer after removing one of its images: %v", err)
	}
}

// testDigestName: an image named by digest only keeps its name as far as
// the archive carries it.
func testDigestName(e *env) {
	target := e.manifest(host(), e.newLayer("a"))
	img := e.image("example.com/app@"+target.Digest.String(), target)
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{BaseName: "example.com/base"})
	e.check(dst, got, e.expect(img, true))
}

// testNameless: an archive that names none of its images: each comes
// back as BaseName@<digest of its target>.
func testNameless(e *env) {
	a := e.image("example.com/app:1", e.manifest(host(), e.newLayer("a")))
	m := e.image("example.com/multi:1", e.multiPlatform("example.com/x:1").Target)
	arc := stripNames(e.t, e.export(ExportOptions{}, a, m))
	dst := e.open()
	got := e.importInto(dst, arc, ImportOptions{BaseName: "example.com/base"})
	wa, wm := e.expect(a, true), e.expect(m, false)
	wa.name = "example.com/base@" + wa.target.Digest.String()
	wm.name = "example.com/base@" + wm.target.Digest.String()
	e.check(dst, got, wa, wm)
}

// testImportTwice: importing the same archive again changes nothing.
func testImportTwice(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	arc := e.export(ExportOptions{}, img)
	dst := e.open()
	w := e.expect(img, false)
	e.check(dst, e.importInto(dst, arc, ImportOptions{}), w)
	e.check(dst, e.importInto(dst, arc, ImportOptions{}), w)
}

// testRetarget: a name the store has for another image goes to the
// archive's, and the old image's blobs are collected.
func testRetarget(e *env) {
	old := e.image("example.com/app:1", e.manifest(host(), e.newLayer("old")))
	dst := e.open()
	e.importInto(dst, e.export(ExportOptions{}, old), ImportOptions{})
	if err := e.src.DB.Images().Delete(e.ctx, old.Name); err != nil {
		e.t.Fatal(err)
	}
	img := e.image("example.com/app:1", e.manifest(host(), e.newLayer("new")))
	got := e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{})
	e.check(dst, got, e.expect(img, true))
	if _, err := dst.DB.ContentStore().Info(e.ctx, old.Target.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		e.t.Errorf("the old target %s after retargeting its name and a collection: %v, want not found", old.Target.Digest, err)
	}
}

// testTruncated: an archive cut short imports nothing and leaves nothing
// a collection keeps.
func testTruncated(e *env) {
	img := e.image("example.com/app:1", e.manifest(host(), e.newLayer("a"), e.newLayer("b")))
	arc := e.export(ExportOptions{}, img)
	dst := e.open()
	// Cut inside entries: a tar cut at an entry's end is a shorter
	// archive, whose import fails or not on what it lacks.
	off, size := lastBlob(e.t, arc)
	for _, n := range []int{len(arc) / 3, len(arc) / 2, int(off + size/2)} {
		_, err := e.f.Import(e.ctx, bytes.NewReader(arc[:n]), dst, ImportOptions{})
		if err == nil {
			e.t.Errorf("Import of the first %d of %d bytes: no error", n, len(arc))
		}
		e.noLeaks(dst)
		imgs, lerr := dst.DB.Images().List(e.ctx)
		if lerr != nil {
			e.t.Fatal(lerr)
		}
		if len(imgs) > 0 {
			e.t.Errorf("Import of the first %d of %d bytes (%v) recorded %d images", n, len(arc), err, len(imgs))
		}
		e.gc(dst)
		var left []digest.Digest
		if err := dst.DB.ContentStore().Walk(e.ctx, func(info content.Info) error {
			left = append(left, info.Digest)
			return nil
		}); err != nil {
			e.t.Fatal(err)
		}
		if len(left) > 0 {
			e.t.Errorf("after a failed import and a collection, blobs %v remain", left)
		}
	}
}

// testRepeatedLayer: a manifest that lists one layer twice (docker build
// makes such images of steps that add the same files).
func testRepeatedLayer(e *env) {
	l := e.newLayer("same")
	img := e.image("example.com/app:1", e.manifest(host(), l, e.newLayer("b"), l))
	arc := e.export(ExportOptions{}, img)
	if n := blobEntries(e.t, arc)[l.desc.Digest]; n != 1 {
		e.t.Errorf("archive holds the repeated layer %s %d times, want 1", l.desc.Digest, n)
	}
	dst := e.open()
	e.check(dst, e.importInto(dst, arc, ImportOptions{}), e.expect(img, true))
}

// testNoLayers: an image of a config alone.
func testNoLayers(e *env) {
	img := e.image("example.com/scratch:1", e.manifest(host()))
	dst := e.open()
	e.check(dst, e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{}), e.expect(img, true))
}

// testCompressions: layers uncompressed, gzip and zstd in one image.
func testCompressions(e *env) {
	var ls []layer
	for i, c := range []struct {
		mediaType string
		compress  func([]byte) []byte
	}{
		{ocispec.MediaTypeImageLayer, func(b []byte) []byte { return b }},
		{ocispec.MediaTypeImageLayerGzip, tartest.Gzip},
		{ocispec.MediaTypeImageLayerZstd, tartest.Zstd},
	} {
		raw := tartest.Tar(tartest.File(fmt.Sprintf("f%d", i), e.t.Name()))
		ls = append(ls, layer{desc: e.blob(c.mediaType, c.compress(raw)), diffID: digest.FromBytes(raw)})
	}
	img := e.image("example.com/app:1", e.manifest(host(), ls...))
	dst := e.open()
	e.check(dst, e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{}), e.expect(img, true))
}

// testDockerMediaTypes: a Docker manifest list of Docker schema 2
// manifests, as registries serve docker-built images.
func testDockerMediaTypes(e *env) {
	dockerManifest := func(p ocispec.Platform) ocispec.Descriptor {
		e.seed++
		raw := tartest.Tar(tartest.File("f", fmt.Sprintf("%s %d", e.t.Name(), e.seed)))
		l := e.blob(images.MediaTypeDockerSchema2LayerGzip, tartest.Gzip(raw))
		cfg := e.json(images.MediaTypeDockerSchema2Config, ocispec.Image{Platform: p,
			RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}}})
		desc := e.json(images.MediaTypeDockerSchema2Manifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: images.MediaTypeDockerSchema2Manifest, Config: cfg, Layers: []ocispec.Descriptor{l}})
		desc.Platform = &p
		return desc
	}
	list := e.json(images.MediaTypeDockerSchema2ManifestList, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: images.MediaTypeDockerSchema2ManifestList, Manifests: []ocispec.Descriptor{dockerManifest(host()), dockerManifest(other())}})
	img := e.image("example.com/docker:1", list)
	single := e.image("example.com/docker-single:1", dockerManifest(host()))
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, img, single), ImportOptions{})
	e.check(dst, got, e.expect(img, false), e.expect(single, true))
}

// testNestedIndex: an index whose platforms sit in an index of their own.
func testNestedIndex(e *env) {
	inner := e.multiPlatform("example.com/inner:1").Target
	img := e.image("example.com/nested:1", e.index(inner))
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{})
	e.check(dst, got, e.expect(img, false))
}

// testCorruptBlob: a blob whose bytes are not its digest fails the import
// (errdefs.ErrDataLoss) and leaves nothing behind.
func testCorruptBlob(e *env) {
	l := e.newLayer("a")
	img := e.image("example.com/app:1", e.manifest(host(), l))
	arc := rewrite(e.t, e.export(ExportOptions{}, img), func(name string, body []byte) ([]byte, bool) {
		if name == "blobs/sha256/"+l.desc.Digest.Encoded() {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
		}
		return body, true
	})
	dst := e.open()
	_, err := e.f.Import(e.ctx, bytes.NewReader(arc), dst, ImportOptions{})
	if !errors.Is(err, errdefs.ErrDataLoss) {
		e.t.Errorf("Import of an archive with a corrupt layer: %v, want ErrDataLoss", err)
	}
	e.noLeaks(dst)
	e.nothingKept(dst)
}

// testFailedImportKeepsStore: an import that fails leaves what the store
// had, blobs the archive shares with it included, and adds nothing.
func testFailedImportKeepsStore(e *env) {
	base := e.newLayer("base")
	a := e.image("example.com/a:1", e.manifest(host(), base))
	dst := e.open()
	wa := e.expect(a, true)
	e.check(dst, e.importInto(dst, e.export(ExportOptions{}, a), ImportOptions{}), wa)
	b := e.image("example.com/b:1", e.manifest(host(), base, e.newLayer("b")))
	arc := e.export(ExportOptions{}, a, b)
	off, size := lastBlob(e.t, arc)
	if _, err := e.f.Import(e.ctx, bytes.NewReader(arc[:off+size/2]), dst, ImportOptions{}); err == nil {
		e.t.Fatal("Import of a truncated archive: no error")
	}
	e.noLeaks(dst)
	e.check(dst, nil, wa)
	if _, err := dst.DB.Images().Get(e.ctx, b.Name); !errors.Is(err, errdefs.ErrNotFound) {
		e.t.Errorf("image %s after a failed import: %v, want not found", b.Name, err)
	}
	kept := map[digest.Digest]bool{}
	for _, d := range wa.present {
		kept[d] = true
	}
	if err := dst.DB.ContentStore().Walk(e.ctx, func(info content.Info) error {
		if !kept[info.Digest] {
			e.t.Errorf("blob %s of the failed import kept after a collection", info.Digest)
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// nothingKept fails when st has an image, or a blob once collected.
func (e *env) nothingKept(st *wiring.Store) {
	e.t.Helper()
	imgs, err := st.DB.Images().List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, img := range imgs {
		e.t.Errorf("image %s recorded", img.Name)
	}
	e.gc(st)
	if err := st.DB.ContentStore().Walk(e.ctx, func(info content.Info) error {
		e.t.Errorf("blob %s kept after a collection", info.Digest)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// testAllPlatformsRequired: an archive of the host's platform only does not
// import when every platform is required, and leaves nothing behind.
func testAllPlatformsRequired(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	dst := e.open()
	_, err := e.f.Import(e.ctx, bytes.NewReader(e.export(ExportOptions{}, img)), dst, ImportOptions{AllPlatforms: true})
	if !errors.Is(err, errdefs.ErrNotFound) {
		e.t.Errorf("Import with every platform required of an archive of one: %v, want ErrNotFound", err)
	}
	e.noLeaks(dst)
	e.nothingKept(dst)
}

// testConcurrentImports: the same archive imported three times at once
// into one store: each import succeeds and the image is whole.
func testConcurrentImports(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	arc := e.export(ExportOptions{}, img)
	dst := e.open()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := e.f.Import(e.ctx, bytes.NewReader(arc), dst, ImportOptions{})
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			e.t.Errorf("concurrent Import: %v", err)
		}
	}
	e.noLeaks(dst)
	e.check(dst, nil, e.expect(img, false))
}

// testOtherNamespace: an archive imported into two namespaces of one
// store; each holds the image on its own, so removing it from the first
// leaves the second whole.
func testOtherNamespace(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	arc := e.export(ExportOptions{}, img)
	dst := e.open()
	w := e.expect(img, false)
	e.check(dst, e.importInto(dst, arc, ImportOptions{}), w)
	first := e.ctx
	e.ctx = namespaces.WithNamespace(first, "archivetest-2")
	e.check(dst, e.importInto(dst, arc, ImportOptions{}), w)
	if err := dst.DB.Images().Delete(first, img.Name); err != nil {
		e.t.Fatal(err)
	}
	e.check(dst, nil, w)
}

// testReExport: what an import recorded exports as the archive it came
// from, byte for byte: nothing the format keeps was lost on the way.
func testReExport(e *env) {
	a := e.image("example.com/app:1", e.manifest(host(), e.newLayer("a")))
	b := e.image("example.com/app@"+a.Target.Digest.String(), a.Target)
	m := e.image("example.com/multi:1", e.multiPlatform("example.com/x:1").Target)
	first := e.export(ExportOptions{}, a, b, m)
	dst := e.open()
	got := e.importInto(dst, first, ImportOptions{})
	byName := map[string]images.Image{}
	for _, img := range got {
		byName[img.Name] = img
	}
	var again bytes.Buffer
	if err := e.f.Export(e.ctx, &again, dst.DB.ContentStore(), []images.Image{byName[a.Name], byName[b.Name], byName[m.Name]}, ExportOptions{}); err != nil {
		e.t.Fatalf("Export of what was imported: %v", err)
	}
	diffArchives(e.t, first, again.Bytes())
}

// testEntryOrder: the archive as other tools write it — entries in
// another order (index.json and manifest.json last, blobs reversed), names
// under "./", as `tar -C dir .` makes them — imports the same.
func testEntryOrder(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	a := e.image("example.com/app:1", e.manifest(host(), e.newLayer("a"), e.newLayer("b")))
	arc := reorder(e.t, e.export(ExportOptions{}, img, a))
	dst := e.open()
	got := e.importInto(dst, arc, ImportOptions{})
	e.check(dst, got, e.expect(img, false), e.expect(a, true))
}

// testCompressedArchive: a gzip or zstd compressed archive imports as the
// plain one (docker load and ctr import take them).
func testCompressedArchive(e *env) {
	img := e.multiPlatform("example.com/multi:1")
	arc := e.export(ExportOptions{}, img)
	for _, c := range []struct {
		name     string
		compress func([]byte) []byte
	}{{"gzip", tartest.Gzip}, {"zstd", tartest.Zstd}} {
		dst := e.open()
		imgs, err := e.f.Import(e.ctx, bytes.NewReader(c.compress(arc)), dst, ImportOptions{})
		if err != nil {
			e.t.Errorf("Import of a %s archive: %v", c.name, err)
			continue
		}
		e.noLeaks(dst)
		e.check(dst, imgs, e.expect(img, false))
	}
}

// testLargeLayer: a layer of several MiB that does not compress, which
// the formats stream in many reads rather than one, beside a zero-byte
// layer (an uncompressed empty layer) and a tiny one.
func testLargeLayer(e *env) {
	rnd := rand.New(rand.NewPCG(1, uint64(len(e.t.Name()))))
	body := make([]byte, 6<<20+123)
	for i := range body {
		body[i] = byte(rnd.Uint32())
	}
	raw := tartest.Tar(tartest.File("big", string(body)))
	big := layer{desc: e.blob(ocispec.MediaTypeImageLayerGzip, tartest.Gzip(raw)), diffID: digest.FromBytes(raw)}
	empty := layer{desc: e.blob(ocispec.MediaTypeImageLayer, nil), diffID: digest.FromBytes(nil)}
	img := e.image("example.com/big:1", e.manifest(host(), e.newLayer("small"), empty, big))
	dst := e.open()
	e.check(dst, e.importInto(dst, e.export(ExportOptions{}, img), ImportOptions{}), e.expect(img, true))
	ra, err := dst.DB.ContentStore().ReaderAt(e.ctx, big.desc)
	if err != nil {
		e.t.Fatal(err)
	}
	defer ra.Close()
	d := digest.Canonical.Digester()
	if _, err := io.Copy(d.Hash(), content.NewReader(ra)); err != nil {
		e.t.Fatal(err)
	}
	if d.Digest() != big.desc.Digest {
		e.t.Errorf("large layer imported as %s, want %s", d.Digest(), big.desc.Digest)
	}
}

// testDuplicateName: an archive that gives one name to two images: the
// later one has it, as with containerd, and the earlier one's blobs go
// with the next collection.
func testDuplicateName(e *env) {
	first := e.image("example.com/app:1", e.manifest(host(), e.newLayer("first")))
	later := e.image("example.com/app:2", e.manifest(host(), e.newLayer("later")))
	later.Name = first.Name // as an archive from two stores could name them
	dst := e.open()
	got := e.importInto(dst, e.export(ExportOptions{}, first, later), ImportOptions{})
	e.check(dst, got, e.expect(later, true))
	if _, err := dst.DB.ContentStore().Info(e.ctx, first.Target.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		e.t.Errorf("the earlier image's manifest %s after a collection: %v, want not found", first.Target.Digest, err)
	}
}
