package images

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

// blobProvider serves one blob from memory.
type blobProvider struct{ b []byte }

type readerAt struct{ *bytes.Reader }

func (readerAt) Close() error { return nil }

func (p blobProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return readerAt{bytes.NewReader(p.b)}, nil
}

func TestChildren(t *testing.T) {
	layer := digest.FromString("layer")
	config := digest.FromString("config")
	for _, tc := range []struct {
		name      string
		mediaType string
		body      string
		want      []digest.Digest
		wantErr   error
	}{
		{"manifest", ocispec.MediaTypeImageManifest,
			`{"config":{"digest":"` + config.String() + `"},"layers":[{"digest":"` + layer.String() + `"}]}`,
			[]digest.Digest{config, layer}, nil},
		{"index", MediaTypeDockerSchema2ManifestList, `{"manifests":[{"digest":"` + layer.String() + `"}]}`, []digest.Digest{layer}, nil},
		{"layer-has-none", ocispec.MediaTypeImageLayerGzip, `not json at all`, nil, nil},
		{"bad-json", ocispec.MediaTypeImageIndex, `{"manifests":[`, nil, errdefs.ErrInvalidArgument},
		{"bad-child", ocispec.MediaTypeImageIndex, `{"manifests":[{"digest":"sha256:zz"}]}`, nil, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := ocispec.Descriptor{MediaType: tc.mediaType, Digest: digest.FromString(tc.body), Size: int64(len(tc.body))}
			got, err := Children(context.Background(), blobProvider{[]byte(tc.body)}, desc)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Children(%s) error = %v, want %v", tc.name, err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Children(%s) = %v, want %v", tc.name, got, tc.want)
			}
			for i := range got {
				if got[i].Digest != tc.want[i] {
					t.Fatalf("Children(%s)[%d] = %s, want %s", tc.name, i, got[i].Digest, tc.want[i])
				}
			}
		})
	}
	big := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("big")}
	if _, err := Children(context.Background(), blobProvider{make([]byte, MaxManifestSize+1)}, big); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Children(oversized) = %v, want invalid argument", err)
	}
}

// FuzzChildren feeds hostile manifests to the parser GC and pulls rely on:
// it must not panic, errors must be invalid-argument, and every child it
// returns must carry a valid digest.
func FuzzChildren(f *testing.F) {
	f.Add(`{"config":{"digest":"sha256:`+digest.FromString("c").Encoded()+`"},"layers":[]}`, true)
	f.Add(`{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+digest.FromString("m").Encoded()+`","size":1}]}`, false)
	f.Add(`{"layers":null,"config":null}`, true)
	f.Add(`[]`, false)
	f.Fuzz(func(t *testing.T, body string, manifest bool) {
		mt := ocispec.MediaTypeImageIndex
		if manifest {
			mt = ocispec.MediaTypeImageManifest
		}
		desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(body), Size: int64(len(body))}
		children, err := Children(context.Background(), blobProvider{[]byte(body)}, desc)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not invalid argument", err)
			}
			return
		}
		for _, c := range children {
			if c.Digest.Validate() != nil {
				t.Fatalf("child with invalid digest %q returned", c.Digest)
			}
		}
	})
}
