package archivetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/images"
)

// testLegacyLayout: the archive without its OCI half (index.json,
// oci-layout), as docker save wrote it before Docker 25: the import builds
// each image's manifest from manifest.json, so the target digest is new,
// but the config and layers are the same blobs, the names the RepoTags,
// and the image is complete and survives a collection.
func testLegacyLayout(e *env) { legacyRoundTrip(e, withoutOCI) }

// testLegacyPaths: the same in the layout of docker save before Docker
// 1.10 to 24: each layer at <id>/layer.tar (a layer an image lists again
// is a symbolic link to the first), the config at <hex>.json.
func testLegacyPaths(e *env) { legacyRoundTrip(e, oldPaths) }

func legacyRoundTrip(e *env, transform func(*testing.T, []byte) []byte) {
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
	empty := layer{desc: e.blob(ocispec.MediaTypeImageLayer, nil), diffID: digest.FromBytes(nil)}
	a := e.image("example.com/app:1", e.manifest(host(), ls[0], ls[1], empty, ls[2], ls[1]))
	b := e.image("example.com/app:latest", a.Target)
	m := e.image("example.com/multi:1", e.multiPlatform("example.com/x:1").Target)
	srcs := []images.Image{a, b, m}
	// Names as RepoTags shortens them (docker.io/library/ goes) and as
	// the import reads them back.
	for _, name := range oddNames {
		srcs = append(srcs, e.image(name, a.Target))
	}
	arc := transform(e.t, e.export(ExportOptions{}, srcs...))
	dst := e.open()
	got := e.importInto(dst, arc, ImportOptions{BaseName: "example.com/base"})
	var names []string
	for _, img := range got {
		names = append(names, img.Name)
	}
	slices.Sort(names)
	wantNames := append([]string{"example.com/app:1", "example.com/app:latest", "example.com/multi:1"}, oddNames...)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		e.t.Errorf("Import of a legacy archive recorded %q, want %q", names, wantNames)
	}
	for _, src := range srcs {
		img, err := dst.DB.Images().Get(e.ctx, src.Name)
		if err != nil {
			e.t.Errorf("image %s: %v", src.Name, err)
			continue
		}
		// What the archive held: the host's manifest of the source.
		_, sm, err := images.Manifest(e.ctx, e.src.DB.ContentStore(), src.Target, images.Only(host()))
		if err != nil {
			e.t.Fatal(err)
		}
		gm, err := images.ReadManifest(e.ctx, dst.DB.ContentStore(), img.Target)
		if err != nil {
			e.t.Errorf("image %s: %v", src.Name, err)
			continue
		}
		if gm.Config.Digest != sm.Config.Digest {
			e.t.Errorf("image %s: config %s, want %s", src.Name, gm.Config.Digest, sm.Config.Digest)
		}
		if len(gm.Layers) != len(sm.Layers) {
			e.t.Errorf("image %s: %d layers, want %d", src.Name, len(gm.Layers), len(sm.Layers))
			continue
		}
		for i := range gm.Layers {
			if gm.Layers[i].Digest != sm.Layers[i].Digest || gm.Layers[i].Size != sm.Layers[i].Size {
				e.t.Errorf("image %s: layer %d is %s (%d bytes), want %s (%d bytes)", src.Name, i,
					gm.Layers[i].Digest, gm.Layers[i].Size, sm.Layers[i].Digest, sm.Layers[i].Size)
			}
			if got, want := compressionOf(gm.Layers[i].MediaType), compressionOf(sm.Layers[i].MediaType); got != want {
				e.t.Errorf("image %s: layer %d has media type %s (%s), want %s", src.Name, i, gm.Layers[i].MediaType, got, want)
			}
		}
		w := want{name: src.Name, target: img.Target, complete: []ocispec.Platform{host()}, platforms: []ocispec.Platform{host()},
			present: []digest.Digest{img.Target.Digest, sm.Config.Digest}}
		for _, l := range sm.Layers {
			w.present = append(w.present, l.Digest)
		}
		e.check(dst, nil, w)
	}
}

// withoutOCI drops the OCI half of a docker archive.
func withoutOCI(t *testing.T, b []byte) []byte {
	return rewrite(t, b, func(name string, body []byte) ([]byte, bool) {
		return body, name != "index.json" && name != "oci-layout"
	})
}

// oldPaths rewrites a docker archive into the layout before Docker 25:
// no OCI half, no blobs/ directory; a config at <hex>.json and each layer
// at <n>/layer.tar, a layer listed again a symbolic link to where it is
// first.
func oldPaths(t *testing.T, b []byte) []byte {
	t.Helper()
	files := map[string][]byte{}
	rewrite(t, b, func(name string, body []byte) ([]byte, bool) {
		files[name] = body
		return body, true
	})
	var items []map[string]any
	if err := json.Unmarshal(files["manifest.json"], &items); err != nil {
		t.Fatal(err)
	}
	var (
		out   bytes.Buffer
		tw    = tar.NewWriter(&out)
		where = map[string]string{} // blob path → its new path
		n     = 0
	)
	write := func(hdr *tar.Header, body []byte) {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range items {
		cfg := it["Config"].(string)
		if _, ok := where[cfg]; !ok {
			where[cfg] = strings.TrimPrefix(cfg, "blobs/sha256/") + ".json"
			write(&tar.Header{Name: where[cfg], Mode: 0o644, Size: int64(len(files[cfg])), Typeflag: tar.TypeReg}, files[cfg])
		}
		it["Config"] = where[cfg]
		var layers []any
		seen := map[string]bool{}
		for _, l := range it["Layers"].([]any) {
			p := l.(string)
			n++
			dir := fmt.Sprintf("%064x", n)
			write(&tar.Header{Name: dir + "/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
			if first, ok := where[p]; ok {
				// As docker wrote a layer it had written already.
				write(&tar.Header{Name: dir + "/layer.tar", Linkname: "../" + first, Mode: 0o644, Typeflag: tar.TypeSymlink}, nil)
				if seen[p] {
					layers = append(layers, dir+"/layer.tar")
					continue
				}
			} else {
				where[p] = dir + "/layer.tar"
				write(&tar.Header{Name: where[p], Mode: 0o644, Size: int64(len(files[p])), Typeflag: tar.TypeReg}, files[p])
			}
			seen[p] = true
			layers = append(layers, dir+"/layer.tar")
		}
		it["Layers"] = layers
	}
	mj, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	write(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(mj)), Typeflag: tar.TypeReg}, mj)
	write(&tar.Header{Name: "repositories", Mode: 0o644, Size: int64(len(files["repositories"])), Typeflag: tar.TypeReg}, files["repositories"])
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// oddNames are names whose familiar forms differ from them, or that look
// like something else.
var oddNames = []string{
	"docker.io/library/app:1",
	"docker.io/user/app:2",
	"docker.io/library/a/b:3",
	"localhost/app:4",
	"localhost:5000/app:5",
	"ghcr.io/org/team/app:6",
	"registry.example.com:5000/library/app:7",
	"example.com/app:UPPER_case.tag-1",
}

// compressionOf names the compression a layer media type says.
func compressionOf(mediaType string) string {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip, images.MediaTypeDockerSchema2LayerGzip:
		return "gzip"
	case ocispec.MediaTypeImageLayerZstd, images.MediaTypeDockerSchema2LayerZstd:
		return "zstd"
	case ocispec.MediaTypeImageLayer, images.MediaTypeDockerSchema2Layer:
		return "none"
	}
	return "unknown " + mediaType
}
