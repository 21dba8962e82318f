package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is a layer blob to push, compressed as it will be stored.
type Layer struct {
	Data      []byte
	MediaType string // ocispec.MediaTypeImageLayerGzip when empty
}

// PushBlob uploads data to repo on the registry at host (plain HTTP,
// monolithic upload) and returns its descriptor.
func PushBlob(t testing.TB, host, repo string, data []byte, mediaType string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	resp, err := http.Post("http://"+host+"/v2/"+repo+"/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("push blob to %s/%s: start upload: %s", host, repo, resp.Status)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + host + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+desc.Digest.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob %s to %s/%s: %s: %s", desc.Digest, host, repo, resp.Status, body)
	}
	return desc
}

// PushManifest puts a manifest or index document under ref (a tag or a
// digest) and returns its descriptor.
func PushManifest(t testing.TB, host, repo, ref string, v any, mediaType string) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if ref == "" {
		ref = desc.Digest.String()
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(b))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest %s to %s/%s: %s: %s", ref, host, repo, resp.Status, body)
	}
	return desc
}

// PushImage pushes a one-platform OCI image (config for platform os/arch,
// the layers as given) and tags it; it returns the manifest's descriptor,
// with the platform set, as an index would list it.
func PushImage(t testing.TB, host, repo, tag, os, arch string, layers []Layer, diffIDs []digest.Digest) ocispec.Descriptor {
	t.Helper()
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: os, Architecture: arch}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: PushBlob(t, host, repo, cb, ocispec.MediaTypeImageConfig)}
	for _, l := range layers {
		mt := l.MediaType
		if mt == "" {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		m.Layers = append(m.Layers, PushBlob(t, host, repo, l.Data, mt))
	}
	desc := PushManifest(t, host, repo, tag, m, ocispec.MediaTypeImageManifest)
	desc.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return desc
}

// PushIndex pushes an OCI index of manifests under tag.
func PushIndex(t testing.TB, host, repo, tag string, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	return PushManifest(t, host, repo, tag, idx, ocispec.MediaTypeImageIndex)
}

// FetchManifest GETs ref from repo with the Accept header a puller sends
// and returns the body and its Docker-Content-Digest.
func FetchManifest(t testing.TB, host, repo, ref string) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref), nil)
	req.Header.Set("Accept", strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get manifest %s/%s:%s: %s", host, repo, ref, resp.Status)
	}
	return b, resp.Header.Get("Docker-Content-Digest")
}
