package metadata_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
)

// lockedBuffer collects a logger's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGCUnreadableImage (issue 11, item 4; issue 12, item 1): a collection
// past an image whose manifest cannot be parsed succeeds without reading it
// (GC follows labels only) and keeps its target; fsck reports such images
// (TestFsckCorruptManifest).
func TestGCUnreadableImage(t *testing.T) {
	var logs lockedBuffer
	db := newDB(t, metadata.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := namespaces.WithNamespace(context.Background(), "team")
	cs := db.ContentStore()
	write := func(body, mediaType string, opts ...content.Opt) ocispec.Descriptor {
		t.Helper()
		desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(body), Size: int64(len(body))}
		if err := content.WriteBlob(ctx, cs, "w-"+desc.Digest.Encoded(), strings.NewReader(body), desc, opts...); err != nil {
			t.Fatal(err)
		}
		return desc
	}
	broken := write("{not a manifest", ocispec.MediaTypeImageManifest)
	config := write(`{"architecture":"amd64","os":"linux"}`, ocispec.MediaTypeImageConfig)
	man, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{}})
	if err != nil {
		t.Fatal(err)
	}
	fine := write(string(man), ocispec.MediaTypeImageManifest, content.WithLabels(map[string]string{"containerd.io/gc.ref.content.config": config.Digest.String()}))
	for name, target := range map[string]ocispec.Descriptor{"broken:1": broken, "fine:1": fine} {
		if _, err := db.Images().Create(ctx, images.Image{Name: name, Target: target}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatalf("GarbageCollect = %v, want a collection", err)
	}
	if out := logs.String(); strings.Contains(out, "level=WARN") {
		t.Errorf("GC warned; it has no reason to read a manifest:\n%s", out)
	}
	if _, err := cs.Info(ctx, broken.Digest); err != nil {
		t.Fatalf("target of broken:1 after GC: %v", err)
	}
	if _, err := cs.Info(ctx, config.Digest); err != nil {
		t.Fatalf("config of fine:1 after GC: %v", err)
	}
}
