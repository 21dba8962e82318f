package testutil

import (
	"encoding/json"
	"runtime"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushBusybox pushes the busybox image of BusyboxLayout (one uncompressed
// layer, config Env PATH and Cmd ["sh"], the host's platform) to repo:tag
// on the registry at host, for clients that pull it (BuildKit's FROM), and
// returns its reference, host/repo:tag.
func PushBusybox(t testing.TB, host, repo, tag string) string {
	t.Helper()
	layer := busyboxLayer(t)
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}},
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    PushBlob(t, host, repo, cb, ocispec.MediaTypeImageConfig),
		Layers:    []ocispec.Descriptor{PushBlob(t, host, repo, layer, ocispec.MediaTypeImageLayer)},
	}
	PushManifest(t, host, repo, tag, m, ocispec.MediaTypeImageManifest)
	return host + "/" + repo + ":" + tag
}
