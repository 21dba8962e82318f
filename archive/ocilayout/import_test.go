package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// impEntry is one entry of an archive a test builds; typ defaults to a
// regular file.
type impEntry struct {
	name string
	typ  byte
	body []byte
	link string
	size int64 // when set, the header's size instead of len(body)
}

// impTar writes entries as given, hostile names and all.
func impTar(t testing.TB, entries ...impEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, ModTime: tartest.Epoch, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %q: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func impJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// impImage is an OCI image built in code.
type impImage struct {
	manifest ocispec.Descriptor // with its platform
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	tars     [][]byte
	blobs    map[digest.Digest][]byte
}

// impBuild makes an image for platform p of gzip layers holding files.
func impBuild(t testing.TB, p ocispec.Platform, layers ...[]tartest.Entry) impImage {
	t.Helper()
	img := impImage{blobs: map[digest.Digest][]byte{}}
	cfg := ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, entries := range layers {
		tb := tartest.Tar(entries...)
		gz := tartest.Gzip(tb)
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))}
		img.blobs[d.Digest] = gz
		img.tars = append(img.tars, tb)
		img.layers = append(img.layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tb))
	}
	cb := impJSON(t, cfg)
	img.config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	img.blobs[img.config.Digest] = cb
	m.Config, m.Layers = img.config, img.layers
	mb := impJSON(t, m)
	img.manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb)), Platform: &p}
	img.blobs[img.manifest.Digest] = mb
	return img
}

// impSimple is a two-layer image for the host's platform.
func impSimple(t testing.TB) impImage {
	return impBuild(t, images.DefaultPlatform(),
		[]tartest.Entry{tartest.Dir("etc"), tartest.File("etc/os-release", "ID=import-test\n"), tartest.File("etc/motd", "layer 1\n")},
		[]tartest.Entry{tartest.Dir("etc"), tartest.File("etc/motd", "layer 2\n"), tartest.File("etc/.wh.os-release", "")})
}

// blobEntry is the layout entry of blob d.
func impBlob(d digest.Digest, body []byte) impEntry {
	return impEntry{name: "blobs/sha256/" + d.Encoded(), body: body}
}

// impIndex is index.json listing descs.
func impIndex(t testing.TB, descs ...ocispec.Descriptor) []byte {
	return impJSON(t, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
}

var impLayoutFile = []byte(`{"imageLayoutVersion":"1.0.0"}`)

// impLayout is an OCI layout of imgs' blobs (only those of digests, when
// given) with index.json, first or last.
func impLayout(t testing.TB, index []byte, indexFirst bool, blobs map[digest.Digest][]byte) []impEntry {
	meta := []impEntry{{name: "oci-layout", body: impLayoutFile}, {name: "index.json", body: index}}
	entries := []impEntry{{name: "blobs/", typ: tar.TypeDir}, {name: "blobs/sha256/", typ: tar.TypeDir}}
	for d, b := range blobs {
		entries = append(entries, impBlob(d, b))
	}
	if indexFirst {
		return append(meta, entries...)
	}
	return append(entries, meta...)
}

func impNamed(d ocispec.Descriptor, annotations map[string]string) ocispec.Descriptor {
	d.Annotations = annotations
	return d
}

// impUnpacked unpacks the host platform of image name and checks its tree.
func impUnpacked(t *testing.T, ctx context.Context, st *wiring.Store, name string, want map[string]testutil.TreeEntry) {
	t.Helper()
	img, err := st.DB.Images().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := images.Manifest(ctx, st.DB.ContentStore(), img.Target, images.Only(images.DefaultPlatform()))
	if err != nil {
		t.Fatalf("image %q: %v", name, err)
	}
	if _, err := pull.Unpack(ctx, st, desc, "", nil); err != nil {
		t.Fatalf("unpack %q: %v", name, err)
	}
	storetest.WantTree(t, want, storetest.Tree(t, ctx, st, name))
}

// impNothingLeft checks that a failed import left no image, no lease and,
// after a collection, no blob and no ingest.
func impNothingLeft(t *testing.T, ctx context.Context, st *wiring.Store) {
	t.Helper()
	if imgs, err := st.DB.Images().List(ctx); err != nil || len(imgs) > 0 {
		t.Fatalf("images after a failed import: %v, %v", imgs, err)
	}
	if ls, err := st.DB.Leases().List(ctx); err != nil || len(ls) > 0 {
		t.Fatalf("leases after an import: %v, %v", ls, err)
	}
	if _, err := st.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := st.DB.ContentStore().Walk(ctx, func(info content.Info) error {
		left = append(left, info.Digest.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("blobs left after a failed import and GC: %v", left)
	}
	if sts, err := st.DB.ContentStore().ListStatuses(ctx); err != nil || len(sts) > 0 {
		t.Fatalf("ingests left after a failed import: %+v, %v", sts, err)
	}
}

func TestImportOCILayout(t *testing.T) {
	img := impSimple(t)
	index := impIndex(t, impNamed(img.manifest, map[string]string{ocispec.AnnotationRefName: "1.0"}))
	for _, tc := range []struct {
		name       string
		indexFirst bool
		dotSlash   bool
		gzip       bool
	}{
		{name: "index last"},
		{name: "index first", indexFirst: true},
		{name: "dot slash names", dotSlash: true},
		{name: "gzip archive", indexFirst: true, gzip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := storetest.Open(t)
			entries := impLayout(t, index, tc.indexFirst, img.blobs)
			if tc.dotSlash {
				for i := range entries {
					entries[i].name = "./" + entries[i].name
				}
				entries = append([]impEntry{{name: "./", typ: tar.TypeDir}}, entries...)
			}
			data := impTar(t, entries...)
			if tc.gzip {
				data = tartest.Gzip(data)
			}
			imgs, err := Import(ctx, bytes.NewReader(data), st, ImportOptions{BaseName: "example.com/app"})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Name != "example.com/app:1.0" || imgs[0].Target.Digest != img.manifest.Digest {
				t.Fatalf("Import = %+v, want example.com/app:1.0 → %s", imgs, img.manifest.Digest)
			}
			if imgs[0].Target.Annotations != nil || imgs[0].Target.Platform == nil {
				t.Fatalf("target = %+v, want the platform and no naming annotations", imgs[0].Target)
			}
			cs := st.DB.ContentStore()
			for d := range img.blobs {
				if _, err := cs.Info(ctx, d); err != nil {
					t.Errorf("blob %s: %v", d, err)
				}
			}
			mi, err := cs.Info(ctx, img.manifest.Digest)
			if err != nil || mi.Labels["containerd.io/gc.ref.content.config"] != img.config.Digest.String() ||
				mi.Labels["containerd.io/gc.ref.content.l.1"] != img.layers[1].Digest.String() {
				t.Fatalf("manifest labels = %v, %v", mi.Labels, err)
			}
			li, err := cs.Info(ctx, img.layers[0].Digest)
			if err != nil || li.Labels["containerd.io/uncompressed"] != digest.FromBytes(img.tars[0]).String() {
				t.Fatalf("layer labels = %v, %v", li.Labels, err)
			}
			if ls, err := st.DB.Leases().List(ctx); err != nil || len(ls) > 0 {
				t.Fatalf("leases after import: %v, %v", ls, err)
			}
			// What the import wrote survives a collection: the image holds it.
			if _, err := st.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.name == "index last" {
				impUnpacked(t, ctx, st, imgs[0].Name, testutil.ComputeTree(img.tars))
			} else if _, err := cs.Info(ctx, img.layers[1].Digest); err != nil {
				t.Fatalf("layer after GC: %v", err)
			}

			// The same archive again: blobs present, the record updated.
			again, err := Import(ctx, bytes.NewReader(data), st, ImportOptions{BaseName: "example.com/app"})
			if err != nil || len(again) != 1 || again[0].Name != imgs[0].Name {
				t.Fatalf("second Import = %+v, %v", again, err)
			}
		})
	}
}

func TestImportNames(t *testing.T) {
	img := impSimple(t)
	index := impIndex(t,
		impNamed(img.manifest, map[string]string{"io.containerd.image.name": "docker.io/library/full:1", ocispec.AnnotationRefName: "1"}),
		impNamed(img.manifest, map[string]string{ocispec.AnnotationRefName: "reg.example.com/x/y:2"}),
		impNamed(img.manifest, map[string]string{ocispec.AnnotationRefName: "3"}),
		img.manifest,
	)
	data := impTar(t, impLayout(t, index, false, img.blobs)...)
	for _, tc := range []struct {
		name string
		o    ImportOptions
		want []string
	}{
		{"base name", ImportOptions{BaseName: "example.com/base"}, []string{
			"docker.io/library/full:1", "reg.example.com/x/y:2", "example.com/base:3", "example.com/base@" + img.manifest.Digest.String()}},
		{"digests", ImportOptions{BaseName: "example.com/base", Digests: true}, []string{
			"docker.io/library/full:1", "example.com/base@" + img.manifest.Digest.String(), "reg.example.com/x/y:2", "example.com/base:3"}},
		{"default base", ImportOptions{}, []string{
			"docker.io/library/full:1", "reg.example.com/x/y:2", "docker.io/library/import-", "docker.io/library/import-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := storetest.Open(t)
			imgs, err := Import(ctx, bytes.NewReader(data), st, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, i := range imgs {
				got = append(got, i.Name)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Import names = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Fatalf("Import names = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// otherPlatform is a platform the host does not run.
func impOtherPlatform() ocispec.Platform {
	if images.DefaultPlatform().Architecture == "arm64" {
		return ocispec.Platform{OS: "linux", Architecture: "s390x"}
	}
	return ocispec.Platform{OS: "linux", Architecture: "arm64"}
}

func TestImportPlatforms(t *testing.T) {
	host := impSimple(t)
	other := impBuild(t, impOtherPlatform(), []tartest.Entry{tartest.File("platform", "other\n")})
	idxBody := impJSON(t, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{host.manifest, other.manifest}})
	idx := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(idxBody), Size: int64(len(idxBody))}
	index := impIndex(t, impNamed(idx, map[string]string{ocispec.AnnotationRefName: "example.com/multi:1"}))
	blobs := func(imgs []impImage, skip ...digest.Digest) map[digest.Digest][]byte {
		m := map[digest.Digest][]byte{idx.Digest: idxBody}
		for _, img := range imgs {
			for d, b := range img.blobs {
				m[d] = b
			}
		}
		for _, d := range skip {
			delete(m, d)
		}
		return m
	}
	otherName := images.FormatPlatform(impOtherPlatform())
	hostName := images.FormatPlatform(images.DefaultPlatform())
	for _, tc := range []struct {
		name  string
		blobs map[digest.Digest][]byte
		all   bool
		err   string
	}{
		{name: "all platforms", blobs: blobs([]impImage{host, other}), all: true},
		{name: "host only", blobs: blobs([]impImage{host})},
		{name: "host only, all asked", blobs: blobs([]impImage{host}), all: true,
			err: fmt.Sprintf("image \"example.com/multi:1\": %s manifest %s is not in the archive (exported without --all-platforms?)", otherName, other.manifest.Digest)},
		{name: "host layer missing", blobs: blobs([]impImage{host, other}, host.layers[1].Digest),
			err: fmt.Sprintf("%s layer %s of manifest %s is not in the archive", hostName, host.layers[1].Digest, host.manifest.Digest)},
		{name: "host config missing", blobs: blobs([]impImage{host, other}, host.config.Digest),
			err: fmt.Sprintf("%s config %s of manifest %s is not in the archive", hostName, host.config.Digest, host.manifest.Digest)},
		{name: "other only", blobs: blobs([]impImage{other}),
			err: fmt.Sprintf("%s manifest %s is not in the archive", hostName, host.manifest.Digest)},
		{name: "index missing", blobs: blobs([]impImage{host, other}, idx.Digest),
			err: fmt.Sprintf("index %s is not in the archive", idx.Digest)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := storetest.Open(t)
			data := impTar(t, impLayout(t, index, true, tc.blobs)...)
			imgs, err := Import(ctx, bytes.NewReader(data), st, ImportOptions{AllPlatforms: tc.all})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(imgs) != 1 || imgs[0].Name != "example.com/multi:1" || imgs[0].Target.Digest != idx.Digest {
					t.Fatalf("Import = %+v", imgs)
				}
				impUnpacked(t, ctx, st, imgs[0].Name, testutil.ComputeTree(host.tars))
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Import = %v, want an error with %q", err, tc.err)
			}
			impNothingLeft(t, ctx, st)
		})
	}
}

// impDockerLegacy is a `docker save` archive of img's layers, uncompressed,
// before Docker 25: <hex>.json config, <id>/layer.tar layers (the third a
// symlink to the first), manifest.json last.
func impDockerLegacy(t testing.TB, tars [][]byte, repoTags []string, manifestFirst bool) (entries []impEntry, config []byte) {
	t.Helper()
	cfg := ocispec.Image{Platform: images.DefaultPlatform(), RootFS: ocispec.RootFS{Type: "layers"}}
	var paths []string
	for i, tb := range tars {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tb))
		id := digest.FromString(fmt.Sprintf("v1 id %d", i)).Encoded()
		p := id + "/layer.tar"
		paths = append(paths, p)
		entries = append(entries, impEntry{name: id + "/", typ: tar.TypeDir}, impEntry{name: id + "/VERSION", body: []byte("1.0")},
			impEntry{name: id + "/json", body: []byte(`{"id":"` + id + `"}`)})
		if i > 0 && bytes.Equal(tb, tars[0]) {
			entries = append(entries, impEntry{name: p, typ: tar.TypeSymlink, link: "../" + paths[0]})
		} else {
			entries = append(entries, impEntry{name: p, body: tb})
		}
	}
	config = impJSON(t, cfg)
	cfgName := digest.FromBytes(config).Encoded() + ".json"
	entries = append(entries, impEntry{name: cfgName, body: config}, impEntry{name: "repositories", body: []byte(`{}`)})
	mf := impEntry{name: "manifest.json", body: impJSON(t, []map[string]any{{"Config": cfgName, "RepoTags": repoTags, "Layers": paths}})}
	if manifestFirst {
		return append([]impEntry{mf}, entries...), config
	}
	return append(entries, mf), config
}

func TestImportDockerLegacy(t *testing.T) {
	l1 := tartest.Tar(tartest.Dir("bin"), tartest.File("bin/tool", "v1\n"), tartest.File("bin/keep", "kept\n"))
	l2 := tartest.Tar(tartest.Dir("bin"), tartest.File("bin/tool", "v2\n"))
	tars := [][]byte{l1, l2, l1}
	for _, manifestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("manifest first %v", manifestFirst), func(t *testing.T) {
			st, ctx := storetest.Open(t)
			entries, config := impDockerLegacy(t, tars, []string{"app:1", "example.com/app:1"}, manifestFirst)
			imgs, err := Import(ctx, bytes.NewReader(impTar(t, entries...)), st, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 2 || imgs[0].Name != "docker.io/library/app:1" || imgs[1].Name != "example.com/app:1" || imgs[0].Target.Digest != imgs[1].Target.Digest {
				t.Fatalf("Import = %+v", imgs)
			}
			target := imgs[0].Target
			if target.MediaType != images.MediaTypeDockerSchema2Manifest || target.Platform == nil || target.Platform.Architecture != images.DefaultPlatform().Architecture {
				t.Fatalf("target = %+v, want a Docker schema 2 manifest for the host", target)
			}
			cs := st.DB.ContentStore()
			m, err := images.ReadManifest(ctx, cs, target)
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.MediaType != images.MediaTypeDockerSchema2Config || m.Config.Digest != digest.FromBytes(config) || len(m.Layers) != 3 {
				t.Fatalf("manifest = %+v", m)
			}
			for i, l := range m.Layers {
				if l.MediaType != images.MediaTypeDockerSchema2Layer || l.Digest != digest.FromBytes(tars[i]) || l.Size != int64(len(tars[i])) {
					t.Fatalf("layer %d = %+v, want the uncompressed tar", i, l)
				}
			}
			impUnpacked(t, ctx, st, imgs[0].Name, testutil.ComputeTree(tars))
		})
	}
}

func TestImportDocker25(t *testing.T) {
	st, ctx := storetest.Open(t)
	img := impSimple(t)
	index := impIndex(t, impNamed(img.manifest, map[string]string{"io.containerd.image.name": "docker.io/library/app:25", ocispec.AnnotationRefName: "25"}))
	entries := impLayout(t, index, false, img.blobs)
	var layers []string
	for _, l := range img.layers {
		layers = append(layers, "blobs/sha256/"+l.Digest.Encoded())
		// Docker links a legacy directory to each layer blob.
		id := digest.FromString("v1 " + l.Digest.String()).Encoded()
		entries = append(entries, impEntry{name: id + "/layer.tar", typ: tar.TypeSymlink, link: "../blobs/sha256/" + l.Digest.Encoded()})
	}
	entries = append(entries, impEntry{name: "manifest.json", body: impJSON(t, []map[string]any{{
		"Config": "blobs/sha256/" + img.config.Digest.Encoded(), "RepoTags": []string{"app:25"}, "Layers": layers}})})
	imgs, err := Import(ctx, bytes.NewReader(impTar(t, entries...)), st, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/app:25" || imgs[0].Target.Digest != img.manifest.Digest {
		t.Fatalf("Import = %+v, want docker.io/library/app:25 → %s", imgs, img.manifest.Digest)
	}
	impUnpacked(t, ctx, st, imgs[0].Name, testutil.ComputeTree(img.tars))
}

func TestImportHostile(t *testing.T) {
	img := impSimple(t)
	index := impIndex(t, impNamed(img.manifest, map[string]string{ocispec.AnnotationRefName: "example.com/app:1"}))
	good := impLayout(t, index, true, img.blobs)
	layer := img.layers[0]
	complete := impTar(t, good...)
	legacy, _ := impDockerLegacy(t, img.tars, []string{"app:1"}, false)
	other := []byte("not the layer")
	// A large blob last, to cut the archive inside it.
	big := bytes.Repeat([]byte("0123456789"), 1000)
	bigEntry := impBlob(digest.FromBytes(big), big)
	withBig := impTar(t, append(good, bigEntry)...)
	for _, tc := range []struct {
		name    string
		data    []byte
		limits  Limits
		err     string
		errType error
	}{
		{name: "oversized JSON", data: complete, limits: Limits{MaxJSON: 64},
			err: fmt.Sprintf(`entry "index.json": %d bytes exceeds the limit of 64 for JSON files`, len(index)), errType: errdefs.ErrInvalidArgument},
		{name: "dot dot path", data: impTar(t, append(good, impEntry{name: "blobs/../../evil", body: other})...),
			err: `entry "blobs/../../evil": path has ".."`, errType: errdefs.ErrInvalidArgument},
		{name: "dot dot at the top", data: impTar(t, append(good, impEntry{name: "../x", body: other})...),
			err: `entry "../x": path has ".."`, errType: errdefs.ErrInvalidArgument},
		{name: "absolute path", data: impTar(t, append(good, impEntry{name: "/etc/cron.d/x", body: other})...),
			err: `entry "/etc/cron.d/x": absolute path`, errType: errdefs.ErrInvalidArgument},
		{name: "symlink named like a blob", data: impTar(t, append(good, impEntry{name: "blobs/sha256/" + digest.FromBytes(other).Encoded(), typ: tar.TypeSymlink, link: "/etc/shadow"})...),
			err: "is a link (to \"/etc/shadow\"), not a regular file", errType: errdefs.ErrInvalidArgument},
		{name: "device named like a file", data: impTar(t, append(good, impEntry{name: "manifest.json", typ: tar.TypeChar})...),
			err: `entry "manifest.json": tar type '3', not a regular file`, errType: errdefs.ErrInvalidArgument},
		{name: "digest mismatch", data: impTar(t, append(good, impBlob(digest.FromString("something else"), other))...),
			err: fmt.Sprintf("content has digest %s, its name says %s", digest.FromBytes(other), digest.FromString("something else")), errType: errdefs.ErrDataLoss},
		{name: "truncated in a blob", data: withBig[:len(withBig)-1024-5000],
			err: fmt.Sprintf("archive is truncated in entry %q (5240 of 10000 bytes): unexpected EOF", bigEntry.name)},
		{name: "truncated in a header", data: withBig[:len(withBig)-1024-10240-100],
			err: "archive is truncated after entry"},
		{name: "duplicate index.json", data: impTar(t, append(good, impEntry{name: "index.json", body: impIndex(t)})...),
			err: `entry "index.json" appears twice in the archive`, errType: errdefs.ErrInvalidArgument},
		{name: "duplicate blob", data: impTar(t, append(good, impEntry{name: "./blobs/sha256/" + layer.Digest.Encoded(), body: other})...),
			err: "appears twice in the archive", errType: errdefs.ErrInvalidArgument},
		{name: "too many entries", data: complete, limits: Limits{MaxEntries: 3},
			err: "archive has more than 3 entries", errType: errdefs.ErrInvalidArgument},
		{name: "blob too large", data: complete, limits: Limits{MaxBlob: 100},
			err: "exceeds the limit of 100 for blobs", errType: errdefs.ErrInvalidArgument},
		{name: "bad blob name", data: impTar(t, append(good, impEntry{name: "blobs/sha256/XYZ", body: other})...),
			err: `entry "blobs/sha256/XYZ": not a blob name`, errType: errdefs.ErrInvalidArgument},
		{name: "not a tar", data: bytes.Repeat([]byte("junk"), 300),
			err: "not a tar archive", errType: errdefs.ErrInvalidArgument},
		{name: "empty", data: nil, err: "archive is empty", errType: errdefs.ErrInvalidArgument},
		{name: "no index", data: impTar(t, good[2:]...),
			err: "not an image archive: it has neither index.json", errType: errdefs.ErrInvalidArgument},
		{name: "docker link leaves the archive", data: impTar(t, append(legacy[:len(legacy)-1:len(legacy)-1],
			impEntry{name: digest.FromString("x").Encoded() + "/layer.tar", typ: tar.TypeSymlink, link: "../../etc/passwd"})...),
			err: `link to "../../etc/passwd" leaves the archive`, errType: errdefs.ErrInvalidArgument},
		{name: "docker layer missing", data: impTar(t, append(legacy[4:len(legacy)-1:len(legacy)-1], legacy[len(legacy)-1])...),
			err: "/layer.tar\" is not in the archive", errType: errdefs.ErrNotFound},
		{name: "docker config mismatch", data: impTar(t, append(legacy[:len(legacy)-1:len(legacy)-1],
			impEntry{name: digest.FromString("config").Encoded() + ".json", body: other})...),
			err: "its name says " + digest.FromString("config").String(), errType: errdefs.ErrDataLoss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := storetest.Open(t)
			imgs, err := Import(ctx, bytes.NewReader(tc.data), st, ImportOptions{Limits: tc.limits})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Import = %+v, %v; want an error with %q", imgs, err, tc.err)
			}
			t.Log(err)
			if tc.errType != nil && !errors.Is(err, tc.errType) {
				t.Fatalf("Import = %v, want %v", err, tc.errType)
			}
			impNothingLeft(t, ctx, st)
		})
	}
}

// impSkopeo runs skopeo copy from the registry into an archive.
func impSkopeo(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo %q: %v\n%s", args, err, out)
	}
}

func TestImportSkopeoArchives(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	wo := testutil.PushWhiteoutImage(t, reg.Host, "import/whiteout", "v1")
	mp := testutil.PushMultiPlatform(t, reg.Host, "import/multi", "v1")
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		fx     testutil.Fixture
		dest   string
		args   []string
		o      ImportOptions
		want   string
		digest bool // the target is the fixture's root
	}{
		{name: "oci-archive", fx: wo, dest: "oci-archive:%s:" + wo.Ref, want: wo.Ref, digest: true},
		{name: "oci-archive tag only", fx: wo, dest: "oci-archive:%s:v1", o: ImportOptions{BaseName: reg.Host + "/base"}, want: reg.Host + "/base:v1", digest: true},
		{name: "docker-archive", fx: wo, dest: "docker-archive:%s:" + wo.Ref, want: wo.Ref},
		{name: "oci-archive all platforms", fx: mp, dest: "oci-archive:%s:" + mp.Ref, args: []string{"--all"}, o: ImportOptions{AllPlatforms: true}, want: mp.Ref, digest: true},
		{name: "docker-archive of an index", fx: mp, dest: "docker-archive:%s:" + mp.Ref, want: mp.Ref},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := storetest.Open(t)
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".tar")
			impSkopeo(t, append(tc.args, "docker://"+tc.fx.Ref, fmt.Sprintf(tc.dest, file))...)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			imgs, err := Import(ctx, f, st, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Name != tc.want {
				t.Fatalf("Import = %+v, want one image %s", imgs, tc.want)
			}
			if tc.digest && imgs[0].Target.Digest != tc.fx.Root.Digest {
				t.Fatalf("target %s, want the fixture's %s", imgs[0].Target.Digest, tc.fx.Root.Digest)
			}
			impUnpacked(t, ctx, st, imgs[0].Name, tc.fx.Tree)
		})
	}
}
