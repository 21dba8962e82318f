package images_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
)

// checkStore is a real blob store in a temporary directory.
type checkStore struct {
	t  *testing.T
	cs *local.Store
}

func newCheckStore(t *testing.T) checkStore {
	t.Helper()
	cs, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return checkStore{t, cs}
}

// desc encodes v (JSON unless it is []byte) and returns its descriptor,
// storing the blob only when store is set.
func (s checkStore) desc(mediaType string, v any, store bool) ocispec.Descriptor {
	s.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			s.t.Fatal(err)
		}
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if store {
		if err := content.WriteBlob(context.Background(), s.cs, "check-"+d.Digest.Encoded(), bytes.NewReader(b), d); err != nil {
			s.t.Fatal(err)
		}
	}
	return d
}

func (s checkStore) put(mediaType string, v any) ocispec.Descriptor {
	return s.desc(mediaType, v, true)
}

// image stores a config for p (OCI) and a manifest of layers, and returns
// the manifest's descriptor, stored when store is set.
func (s checkStore) image(p ocispec.Platform, store bool, layers ...ocispec.Descriptor) (ocispec.Descriptor, ocispec.Descriptor) {
	s.t.Helper()
	cfg := s.put(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers"}})
	m := s.desc(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers,
	}, store)
	return m, cfg
}

func platformOf(t *testing.T, s string) ocispec.Platform {
	t.Helper()
	p, err := images.ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func with(d ocispec.Descriptor, p *ocispec.Platform, annotations map[string]string) ocispec.Descriptor {
	d.Platform = p
	d.Annotations = annotations
	return d
}

// TestCheck: an index whose platforms the store holds in every degree.
//
//	top (index)
//	├── amd64      platform in the index; config, layers l1 l2: all present
//	├── arm64/v8   platform in the index; layer l3 missing
//	├── arm/v7     platform only in its config; l1 (shared) present, l4 missing
//	├── s390x      the manifest itself is missing
//	├── nested     a missing index: what it holds is unknown
//	├── attestation manifest, and an artifact: not images, left out
//	└── amd64 again (same digest): counted once
func TestCheck(t *testing.T) {
	ctx := context.Background()
	s := newCheckStore(t)
	layer := func(name string, store bool) ocispec.Descriptor {
		return s.desc(ocispec.MediaTypeImageLayerGzip, []byte("layer "+name), store)
	}
	l1, l2, l3, l4 := layer("1", true), layer("2", true), layer("3", false), layer("4", false)
	amd64P, arm64P, armP, s390xP := platformOf(t, "linux/amd64"), platformOf(t, "linux/arm64"), platformOf(t, "linux/arm/v7"), platformOf(t, "linux/s390x")
	amd64, amd64Cfg := s.image(amd64P, true, l1, l2)
	arm64, arm64Cfg := s.image(arm64P, true, l3)
	arm, armCfg := s.image(armP, true, l1, l4)
	s390x, _ := s.image(s390xP, false, l1)
	attest, _ := s.image(ocispec.Platform{OS: "unknown", Architecture: "unknown"}, true)
	nested := s.desc(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{arm64}}, false)
	artifact := s.put("application/vnd.example.sbom+json", []byte(`{"sbom":true}`))
	variantV8 := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	top := s.put(ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			with(amd64, &amd64P, nil),
			with(arm64, &variantV8, nil),
			arm,
			with(s390x, &s390xP, nil),
			nested,
			with(attest, &ocispec.Platform{OS: "unknown", Architecture: "unknown"}, map[string]string{"vnd.docker.reference.type": "attestation-manifest"}),
			artifact,
			with(amd64, &amd64P, nil),
		},
	})
	size := func(ds ...ocispec.Descriptor) int64 {
		var n int64
		for _, d := range ds {
			n += d.Size
		}
		return n
	}
	want := []images.PlatformStatus{
		{Platform: amd64P, Manifest: amd64, Present: 4, Needed: 4, Size: size(amd64, amd64Cfg, l1, l2), PresentSize: size(amd64, amd64Cfg, l1, l2)},
		{Platform: arm64P, Manifest: arm64, Present: 2, Needed: 3, Missing: []digest.Digest{l3.Digest},
			Size: size(arm64, arm64Cfg, l3), PresentSize: size(arm64, arm64Cfg)},
		{Platform: armP, Manifest: arm, Present: 3, Needed: 4, Missing: []digest.Digest{l4.Digest},
			Size: size(arm, armCfg, l1, l4), PresentSize: size(arm, armCfg, l1)},
		{Platform: s390xP, Manifest: s390x, Present: 0, Needed: 1, Missing: []digest.Digest{s390x.Digest}, Size: s390x.Size},
		{Manifest: nested, Present: 0, Needed: 1, Missing: []digest.Digest{nested.Digest}, Size: nested.Size},
	}
	// The same answers whether presence is asked of the blobs or of a
	// listing made beforehand, as the CLI does.
	listed := map[digest.Digest]int64{}
	if err := s.cs.Walk(ctx, func(info content.Info) error { listed[info.Digest] = info.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	fromListing := func(_ context.Context, d ocispec.Descriptor) (bool, error) {
		_, ok := listed[d.Digest]
		return ok, nil
	}
	for _, tc := range []struct {
		name string
		has  images.PresenceFunc
	}{{"provider", nil}, {"listing", fromListing}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := images.Check(ctx, s.cs, tc.has, top)
			if err != nil {
				t.Fatalf("Check = %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("Check returned %d statuses, want %d: %+v", len(got), len(want), got)
			}
			for i := range want {
				g, w := got[i], want[i]
				if images.FormatPlatform(g.Platform) != images.FormatPlatform(w.Platform) || g.Manifest.Digest != w.Manifest.Digest ||
					g.Present != w.Present || g.Needed != w.Needed || !slices.Equal(g.Missing, w.Missing) ||
					g.Size != w.Size || g.PresentSize != w.PresentSize {
					t.Errorf("Check [%d] = %+v, want %+v", i, g, w)
				}
				if g.Complete() != (i == 0) {
					t.Errorf("Check [%d].Complete() = %v", i, g.Complete())
				}
			}
		})
	}

	// A manifest as the target: one status, its platform from its config.
	got, err := images.Check(ctx, s.cs, nil, amd64)
	if err != nil || len(got) != 1 || got[0].Manifest.Digest != amd64.Digest || !got[0].Complete() || images.FormatPlatform(got[0].Platform) != "linux/amd64" {
		t.Fatalf("Check(manifest) = %+v, %v", got, err)
	}
}

func TestCheckErrors(t *testing.T) {
	ctx := context.Background()
	s := newCheckStore(t)
	amd64, _ := s.image(platformOf(t, "linux/amd64"), true)
	absent, _ := s.image(platformOf(t, "linux/arm64"), false)
	wrongSize := amd64
	wrongSize.Size++
	notJSON := s.put(ocispec.MediaTypeImageIndex, []byte("not json"))
	schema1 := s.put(images.MediaTypeDockerSchema1SignedManifest, []byte(`{"schemaVersion":1}`))
	layer := s.put(ocispec.MediaTypeImageLayerGzip, []byte("a layer"))
	for _, tc := range []struct {
		name   string
		target ocispec.Descriptor
		want   error
	}{
		{"absent-target", absent, errdefs.ErrNotFound},
		{"wrong-size", wrongSize, errdefs.ErrDataLoss},
		{"not-json", notJSON, errdefs.ErrInvalidArgument},
		{"schema1", schema1, errdefs.ErrNotImplemented},
		{"not-an-image", layer, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := images.Check(ctx, s.cs, nil, tc.target)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check(%s) = %+v, %v; want %v", tc.target.Digest, got, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.target.Digest.String()) {
				t.Fatalf("Check error %q does not name the target %s", err, tc.target.Digest)
			}
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	idx := s.put(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{amd64}})
	if _, err := images.Check(ctx, s.cs, nil, idx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Check with a cancelled context = %v", err)
	}
}
