package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

// memProvider serves blobs from memory by digest.
type memProvider map[digest.Digest][]byte

func (p memProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, ok := p[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("content %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return sizedReader{bytes.NewReader(b)}, nil
}

type sizedReader struct{ *bytes.Reader }

func (sizedReader) Close() error { return nil }

// add stores v (JSON unless it is []byte) and returns its descriptor.
func (p memProvider) add(t *testing.T, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	d := digest.FromBytes(b)
	p[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func withPlatform(d ocispec.Descriptor, s string) ocispec.Descriptor {
	pl := plat(s)
	d.Platform = &pl
	return d
}

// fixture is an image whose index nests another index:
//
//	top (index)
//	├── amd64 manifest            platform linux/amd64
//	├── nested (index)
//	│   ├── arm64 manifest        platform linux/arm64/v8
//	│   └── armv7 manifest        no platform: the config says linux/arm/v7
//	└── attestation manifest      unknown/unknown
type fixture struct {
	p                          memProvider
	top, nested                ocispec.Descriptor
	amd64, arm64, armv7, attes ocispec.Descriptor
	armv7Config                ocispec.Descriptor
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	p := memProvider{}
	manifest := func(arch, variant string) (ocispec.Descriptor, ocispec.Descriptor) {
		layer := digest.FromString("layer " + arch)
		cfg := p.add(t, ocispec.MediaTypeImageConfig, ocispec.Image{
			Platform: ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer}},
		})
		m := p.add(t, ocispec.MediaTypeImageManifest, ocispec.Manifest{
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    cfg,
			Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layer, Size: 1}},
		})
		return m, cfg
	}
	f := fixture{p: p}
	amd64, _ := manifest("amd64", "")
	arm64, _ := manifest("arm64", "v8")
	f.armv7, f.armv7Config = manifest("arm", "v7")
	attes, _ := manifest("unknown", "")
	f.amd64 = withPlatform(amd64, "linux/amd64")
	f.arm64 = withPlatform(arm64, "linux/arm64/v8")
	f.attes = withPlatform(attes, "unknown/unknown")
	f.attes.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
	f.nested = p.add(t, ocispec.MediaTypeImageIndex, ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{f.arm64, f.armv7},
	})
	f.top = p.add(t, MediaTypeDockerSchema2ManifestList, ocispec.Index{
		MediaType: MediaTypeDockerSchema2ManifestList,
		Manifests: []ocispec.Descriptor{f.amd64, f.nested, f.attes},
	})
	return f
}

func TestManifests(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		m    PlatformMatcher
		want []ocispec.Descriptor
	}{
		{"amd64", Only(plat("linux/amd64")), []ocispec.Descriptor{f.amd64}},
		{"arm64-runs-armv7", Only(plat("linux/arm64")), []ocispec.Descriptor{f.arm64, f.armv7}},
		{"armv7", Only(plat("linux/arm/v7")), []ocispec.Descriptor{f.armv7}},
		{"any-order", Any(plat("linux/arm/v7"), plat("linux/amd64")), []ocispec.Descriptor{f.armv7, f.amd64}},
		{"all-in-index-order", All(), []ocispec.Descriptor{f.amd64, f.arm64, f.armv7}},
		{"none", Only(plat("linux/s390x")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Manifests(ctx, f.p, f.top, tc.m)
			if err != nil {
				t.Fatalf("Manifests(%s) error: %v", tc.m, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Manifests(%s) = %v, want %v", tc.m, digests(got), digests(tc.want))
			}
			for i := range got {
				if got[i].Digest != tc.want[i].Digest {
					t.Fatalf("Manifests(%s) = %v, want %v", tc.m, digests(got), digests(tc.want))
				}
				if got[i].Platform == nil {
					t.Fatalf("Manifests(%s)[%d] has no platform", tc.m, i)
				}
			}
		})
	}

	// The armv7 manifest's platform comes from its config.
	got, err := Manifests(ctx, f.p, f.top, Only(plat("linux/arm/v7")))
	if err != nil || len(got) != 1 || FormatPlatform(*got[0].Platform) != "linux/arm/v7" {
		t.Fatalf("Manifests(linux/arm/v7) = %v, %v; want one with platform linux/arm/v7", got, err)
	}

	// A manifest as the target.
	got, err = Manifests(ctx, f.p, f.armv7, Only(plat("linux/arm64")))
	if err != nil || len(got) != 1 || got[0].Digest != f.armv7.Digest {
		t.Fatalf("Manifests(manifest target) = %v, %v; want the manifest", got, err)
	}
	got, err = Manifests(ctx, f.p, f.armv7, Only(plat("linux/amd64")))
	if err != nil || len(got) != 0 {
		t.Fatalf("Manifests(manifest target, other platform) = %v, %v; want none", got, err)
	}
}

func digests(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest.Encoded()[:8])
	}
	return out
}

func TestManifest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	desc, m, err := Manifest(ctx, f.p, f.top, Only(plat("linux/arm64")))
	if err != nil {
		t.Fatalf("Manifest(linux/arm64) error: %v", err)
	}
	if desc.Digest != f.arm64.Digest || len(m.Layers) != 1 {
		t.Fatalf("Manifest(linux/arm64) = %s with %d layers, want %s with 1", desc.Digest, len(m.Layers), f.arm64.Digest)
	}

	_, _, err = Manifest(ctx, f.p, f.top, Only(plat("linux/s390x")))
	want := "no manifest for linux/s390x; the image has linux/amd64, linux/arm64, linux/arm/v7"
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Manifest(linux/s390x) error = %v, want not found with %q", err, want)
	}

	ps, err := Platforms(ctx, f.p, f.top)
	if err != nil {
		t.Fatalf("Platforms error: %v", err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, FormatPlatform(p))
	}
	if w := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}; !slices.Equal(names, w) {
		t.Fatalf("Platforms = %v, want %v", names, w)
	}
}

// TestPlatformsFromIndexOnly: the index's platforms are enough, the
// manifests it names need not be present.
func TestPlatformsFromIndexOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	top := f.p.add(t, ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{f.amd64, f.arm64}})
	delete(f.p, f.amd64.Digest)
	delete(f.p, f.arm64.Digest)
	ps, err := Platforms(ctx, f.p, top)
	if err != nil || len(ps) != 2 {
		t.Fatalf("Platforms = %v, %v; want two platforms", ps, err)
	}
	if got, err := Manifests(ctx, f.p, top, Only(plat("linux/amd64"))); err != nil || len(got) != 1 {
		t.Fatalf("Manifests(linux/amd64) = %v, %v; want the amd64 descriptor", got, err)
	}
}

func TestMissingBlobs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		remove func(f fixture) digest.Digest
		run    func(f fixture) error
		want   func(f fixture) string
	}{
		{"index", func(f fixture) digest.Digest { return f.top.Digest },
			func(f fixture) error { _, err := Manifests(ctx, f.p, f.top, All()); return err },
			func(f fixture) string { return "index " + f.top.Digest.String() + " is not in the content store" }},
		{"nested-index", func(f fixture) digest.Digest { return f.nested.Digest },
			func(f fixture) error { _, err := Platforms(ctx, f.p, f.top); return err },
			func(f fixture) string { return "index " + f.nested.Digest.String() + " is not in the content store" }},
		{"chosen-manifest", func(f fixture) digest.Digest { return f.arm64.Digest },
			func(f fixture) error { _, _, err := Manifest(ctx, f.p, f.top, Only(plat("linux/arm64"))); return err },
			func(f fixture) string {
				return "manifest " + f.arm64.Digest.String() + " (linux/arm64/v8) is not in the content store"
			}},
		{"manifest-without-platform", func(f fixture) digest.Digest { return f.armv7.Digest },
			func(f fixture) error { _, err := Manifests(ctx, f.p, f.top, Only(plat("linux/amd64"))); return err },
			func(f fixture) string { return "manifest " + f.armv7.Digest.String() + " is not in the content store" }},
		{"config-for-platform", func(f fixture) digest.Digest { return f.armv7Config.Digest },
			func(f fixture) error { _, err := Manifests(ctx, f.p, f.top, All()); return err },
			func(f fixture) string {
				return "platform of manifest " + f.armv7.Digest.String() + ": config " + f.armv7Config.Digest.String() + " is not in the content store"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			delete(f.p, tc.remove(f))
			err := tc.run(f)
			if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), tc.want(f)) {
				t.Fatalf("error = %v, want not found with %q", err, tc.want(f))
			}
		})
	}
}

func TestSchema1Refused(t *testing.T) {
	ctx := context.Background()
	p := memProvider{}
	body := []byte(`{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[{"blobSum":"` + digest.FromString("l").String() + `"}]}`)
	for _, tc := range []struct {
		name string
		desc ocispec.Descriptor
		run  func(ocispec.Descriptor) error
	}{
		{"signed-media-type", p.add(t, MediaTypeDockerSchema1SignedManifest, body),
			func(d ocispec.Descriptor) error { _, err := ReadManifest(ctx, p, d); return err }},
		{"media-type", p.add(t, MediaTypeDockerSchema1Manifest, body),
			func(d ocispec.Descriptor) error { _, err := Manifests(ctx, p, d, All()); return err }},
		{"body-only", p.add(t, ocispec.MediaTypeImageManifest, body),
			func(d ocispec.Descriptor) error { _, err := ReadManifest(ctx, p, d); return err }},
		{"platforms", p.add(t, MediaTypeDockerSchema1SignedManifest, body),
			func(d ocispec.Descriptor) error { _, err := Platforms(ctx, p, d); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(tc.desc)
			if !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Fatalf("error = %v, want not implemented", err)
			}
			for _, s := range []string{"schema 1 images are not supported", "push it again with a current client", tc.desc.Digest.String()} {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestReadLimitsAndShapes(t *testing.T) {
	ctx := context.Background()
	p := memProvider{}
	bigManifest := p.add(t, ocispec.MediaTypeImageManifest, make([]byte, MaxManifestSize+1))
	bigConfig := p.add(t, ocispec.MediaTypeImageConfig, make([]byte, MaxConfigSize+1))
	okConfig := p.add(t, ocispec.MediaTypeImageConfig, make([]byte, 0)) // not JSON, but within the limit
	unknownSize := bigManifest
	unknownSize.Size = 0
	shortDesc := p.add(t, ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{}})
	shortDesc.Size--
	cfg := p.add(t, ocispec.MediaTypeImageConfig, ocispec.Image{})
	manifestAsIndex := p.add(t, ocispec.MediaTypeImageIndex, map[string]any{"config": cfg, "layers": []any{}})
	indexBodyType := p.add(t, ocispec.MediaTypeImageManifest, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex})
	indexAsManifest := p.add(t, ocispec.MediaTypeImageManifest, map[string]any{"manifests": []any{}})
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"manifest-over-limit", func() error { _, err := ReadManifest(ctx, p, bigManifest); return err }, "exceeds the limit"},
		{"manifest-over-limit-unknown-size", func() error { _, err := ReadManifest(ctx, p, unknownSize); return err }, "exceeds the limit"},
		{"config-over-limit", func() error { _, err := ReadConfig(ctx, p, bigConfig); return err }, "exceeds the limit"},
		{"config-not-json", func() error { _, err := ReadConfig(ctx, p, okConfig); return err }, "parse config"},
		{"size-mismatch", func() error { _, err := ReadIndex(ctx, p, shortDesc); return err }, "descriptor says"},
		{"manifest-body-as-index", func() error { _, err := ReadIndex(ctx, p, manifestAsIndex); return err }, "body is a manifest"},
		{"index-media-type-in-body", func() error { _, err := ReadManifest(ctx, p, indexBodyType); return err }, `body has media type "application/vnd.oci.image.index.v1+json"`},
		{"index-body-as-manifest", func() error { _, err := ReadManifest(ctx, p, indexAsManifest); return err }, "body is an index"},
		{"config-as-manifest", func() error { _, err := ReadManifest(ctx, p, cfg); return err }, "is not an image manifest"},
		{"manifest-as-config", func() error { _, err := ReadConfig(ctx, p, indexAsManifest); return err }, "is not an image config"},
		{"target-layer", func() error {
			_, err := Manifests(ctx, p, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("x")}, All())
			return err
		}, "neither an index nor a manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want invalid argument with %q", err, tc.want)
			}
		})
	}
}

func TestRootFS(t *testing.T) {
	ctx := context.Background()
	p := memProvider{}
	diffs := []digest.Digest{digest.FromString("a"), digest.FromString("b")}
	cfg := p.add(t, MediaTypeDockerSchema2Config, ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffs}})
	layer := ocispec.Descriptor{MediaType: MediaTypeDockerSchema2LayerGzip, Digest: digest.FromString("gz"), Size: 2}
	got, err := RootFS(ctx, p, ocispec.Manifest{Config: cfg, Layers: []ocispec.Descriptor{layer, layer}})
	if err != nil || !slices.Equal(got, diffs) {
		t.Fatalf("RootFS = %v, %v; want %v", got, err, diffs)
	}
	_, err = RootFS(ctx, p, ocispec.Manifest{Config: cfg, Layers: []ocispec.Descriptor{layer, layer, layer}})
	want := "config " + cfg.Digest.String() + " lists 2 diff IDs but its manifest has 3 layers"
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
		t.Fatalf("RootFS(3 layers) error = %v, want %q", err, want)
	}
}

func TestChainIDs(t *testing.T) {
	// Diff IDs are the sha256 of "a", "b", "c"; the chain IDs were computed
	// with sha256sum: printf '%s %s' "$a" "$b" | sha256sum, and so on.
	a := digest.Digest("sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb")
	b := digest.Digest("sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d")
	c := digest.Digest("sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6")
	ab := digest.Digest("sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676")
	abc := digest.Digest("sha256:2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106")
	for _, tc := range []struct {
		name string
		in   []digest.Digest
		want []digest.Digest
	}{
		{"none", nil, nil},
		{"one", []digest.Digest{a}, []digest.Digest{a}},
		{"two", []digest.Digest{a, b}, []digest.Digest{a, ab}},
		{"three", []digest.Digest{a, b, c}, []digest.Digest{a, ab, abc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			if got := ChainIDs(in); !slices.Equal(got, tc.want) {
				t.Fatalf("ChainIDs(%v) = %v, want %v", tc.in, got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Fatalf("ChainIDs changed its input to %v", in)
			}
		})
	}
}

func TestIsLayer(t *testing.T) {
	for _, tc := range []struct {
		mediaType        string
		layer, nondistrb bool
	}{
		{ocispec.MediaTypeImageLayer, true, false},
		{ocispec.MediaTypeImageLayerGzip, true, false},
		{ocispec.MediaTypeImageLayerZstd, true, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar", true, true},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", true, true},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", true, true},
		{MediaTypeDockerSchema2Layer, true, false},
		{MediaTypeDockerSchema2LayerGzip, true, false},
		{MediaTypeDockerSchema2LayerZstd, true, false},
		{MediaTypeDockerSchema2LayerForeign, true, true},
		{MediaTypeDockerSchema2LayerForeignGzip, true, true},
		{ocispec.MediaTypeImageConfig, false, false},
		{ocispec.MediaTypeImageManifest, false, false},
		{"application/octet-stream", false, false},
	} {
		if got := IsLayer(tc.mediaType); got != tc.layer {
			t.Errorf("IsLayer(%q) = %v, want %v", tc.mediaType, got, tc.layer)
		}
		if got := IsNonDistributable(tc.mediaType); got != tc.nondistrb {
			t.Errorf("IsNonDistributable(%q) = %v, want %v", tc.mediaType, got, tc.nondistrb)
		}
	}
}

// FuzzReadManifest feeds hostile bodies to the readers: they must not
// panic, must fail only with invalid-argument or not-implemented (schema
// 1), and what they accept must name valid digests.
func FuzzReadManifest(f *testing.F) {
	f.Add(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:`+digest.FromString("c").Encoded()+`","size":2},"layers":[]}`, 0)
	f.Add(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+digest.FromString("m").Encoded()+`","size":1,"platform":{"os":"linux","architecture":"arm64"}}]}`, 1)
	f.Add(`{"schemaVersion":1,"fsLayers":[]}`, 0)
	f.Add(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:x"]}}`, 2)
	f.Add(`null`, 1)
	f.Fuzz(func(t *testing.T, body string, kind int) {
		ctx := context.Background()
		p := memProvider{}
		var err error
		switch kind % 3 {
		case 0:
			var m ocispec.Manifest
			m, err = ReadManifest(ctx, p, p.add(t, ocispec.MediaTypeImageManifest, []byte(body)))
			if err == nil {
				for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
					if d.Digest.Validate() != nil {
						t.Fatalf("ReadManifest accepted child digest %q", d.Digest)
					}
				}
			}
		case 1:
			var idx ocispec.Index
			desc := p.add(t, ocispec.MediaTypeImageIndex, []byte(body))
			idx, err = ReadIndex(ctx, p, desc)
			if err == nil {
				for _, d := range idx.Manifests {
					if d.Digest.Validate() != nil {
						t.Fatalf("ReadIndex accepted child digest %q", d.Digest)
					}
				}
				// Walking it must fail cleanly too: its children are
				// not in the store.
				if _, werr := Manifests(ctx, p, desc, All()); werr != nil && !errors.Is(werr, errdefs.ErrNotFound) &&
					!errors.Is(werr, errdefs.ErrInvalidArgument) && !errors.Is(werr, errdefs.ErrNotImplemented) {
					t.Fatalf("Manifests error %v has no class", werr)
				}
			}
		case 2:
			_, err = ReadConfig(ctx, p, p.add(t, ocispec.MediaTypeImageConfig, []byte(body)))
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotImplemented) {
			t.Fatalf("error %v is neither invalid argument nor not implemented", err)
		}
	})
}
