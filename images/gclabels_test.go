package images_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
)

func TestChildrenLabels(t *testing.T) {
	m0, m1 := digest.FromString("m0"), digest.FromString("m1")
	config, l0, l1 := digest.FromString("config"), digest.FromString("l0"), digest.FromString("l1")
	for _, tc := range []struct {
		name, mediaType, body string
		want                  map[string]string
		wantErr               error
	}{
		{"index", ocispec.MediaTypeImageIndex,
			`{"manifests":[{"digest":"` + m0.String() + `"},{"digest":"` + m1.String() + `"}]}`,
			map[string]string{"containerd.io/gc.ref.content.m.0": m0.String(), "containerd.io/gc.ref.content.m.1": m1.String()}, nil},
		{"docker-manifest", images.MediaTypeDockerSchema2Manifest,
			`{"config":{"digest":"` + config.String() + `"},"layers":[{"digest":"` + l0.String() + `"},{"digest":"` + l1.String() + `"}]}`,
			map[string]string{"containerd.io/gc.ref.content.config": config.String(),
				"containerd.io/gc.ref.content.l.0": l0.String(), "containerd.io/gc.ref.content.l.1": l1.String()}, nil},
		{"layer-has-none", ocispec.MediaTypeImageLayerGzip, `not json`, nil, nil},
		{"bad-json", ocispec.MediaTypeImageManifest, `{"layers":[`, nil, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := ocispec.Descriptor{MediaType: tc.mediaType, Digest: digest.FromString(tc.body), Size: int64(len(tc.body))}
			got, err := images.ChildrenLabels(desc, []byte(tc.body))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("ChildrenLabels(%s) error = %v, want %v", tc.name, err, tc.wantErr)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("ChildrenLabels(%s) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

// TestRecord creates a record, then points it at another target keeping
// its labels, and returns the record it replaced.
func TestRecord(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	root := t.TempDir()
	blobs, err := local.New(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(ctx, filepath.Join(root, "metadata.db"), blobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	is := db.Images()
	first := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("first"), Size: 5}
	second := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("second"), Size: 6}

	got, old, err := images.Record(ctx, is, images.Image{Name: "example.com/a:1", Target: first, Labels: map[string]string{"k": "v"}})
	if err != nil || old != nil || got.Target.Digest != first.Digest {
		t.Fatalf("Record(new) = %+v, %v, %v; want a created record at %s and no previous one", got, old, err, first.Digest)
	}
	got, old, err = images.Record(ctx, is, images.Image{Name: "example.com/a:1", Target: second})
	if err != nil || old == nil || old.Target.Digest != first.Digest || got.Target.Digest != second.Digest || got.Labels["k"] != "v" {
		t.Fatalf("Record(existing) = %+v, %+v, %v; want the record at %s with its labels, replacing the one at %s", got, old, err, second.Digest, first.Digest)
	}
	if _, _, err := images.Record(ctx, is, images.Image{Name: "", Target: second}); err == nil {
		t.Fatal("Record of an image without a name succeeded")
	}
}
