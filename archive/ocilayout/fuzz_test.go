package ocilayout_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/testutil/storetest"
)

// fuzzTar builds a tar of name → content entries, in order.
func fuzzTar(files ...[2]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(f[1]))
	}
	tw.Close()
	return buf.Bytes()
}

func blobEntry(b []byte) (ocispec.Descriptor, [2]string) {
	d := digest.FromBytes(b)
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}, [2]string{"blobs/sha256/" + d.Encoded(), string(b)}
}

// FuzzImport feeds archives to Import: whatever the bytes, it returns
// (an error or images) without panicking, and a failed import records no
// image.
func FuzzImport(f *testing.F) {
	layer := tartest.Tar(tartest.File("etc/hostname", "fuzz"))
	ld, le := blobEntry(layer)
	ld.MediaType = ocispec.MediaTypeImageLayer
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}}})
	cd, ce := blobEntry(cfg)
	cd.MediaType = ocispec.MediaTypeImageConfig
	man, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}})
	md, me := blobEntry(man)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "1", ocilayout.AnnotationImageName: "example.com/fuzz:1"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	layout := `{"imageLayoutVersion":"1.0.0"}`
	f.Add(fuzzTar([2]string{"oci-layout", layout}, [2]string{"index.json", string(idx)}, le, ce, me))
	f.Add(fuzzTar(le, ce, me, [2]string{"index.json", string(idx)}, [2]string{"oci-layout", layout}))
	legacy, _ := json.Marshal([]map[string]any{{"Config": ce[0], "RepoTags": []string{"fuzz:1"}, "Layers": []string{le[0]}}})
	f.Add(fuzzTar(ce, le, [2]string{"manifest.json", string(legacy)}))
	f.Add(fuzzTar([2]string{"../evil", "x"}, [2]string{"index.json", "{"}))
	f.Add([]byte("not a tar"))

	st, ctx := storetest.Open(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := st.DB.Images().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := ocilayout.Import(ctx, bytes.NewReader(data), st, ocilayout.ImportOptions{})
		after, lerr := st.DB.Images().List(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil && len(after) != len(before) {
			t.Fatalf("failed import (%v) changed the images from %d to %d", err, len(before), len(after))
		}
		if err == nil && len(imgs) == 0 && len(after) != len(before) {
			t.Fatalf("an import that created nothing changed the images")
		}
	})
}
