package metadata_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/overlay"
)

func testContainer(id, snapshotter, key string, labels map[string]string) containers.Container {
	return containers.Container{
		ID: id, Labels: labels,
		Runtime:     containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec:        &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte("{}")},
		Snapshotter: snapshotter, SnapshotKey: key,
	}
}

// TestContainerGC: a container holds its root filesystem snapshot (and the
// committed parent below it) and what its gc.ref labels name; once it is
// deleted, a collection frees them, records and backend snapshots alike.
func TestContainerGC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("overlay snapshots need root")
	}
	backend, err := overlay.New(filepath.Join(t.TempDir(), "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(t, metadata.WithSnapshotter("overlayfs", backend))
	sn := db.Snapshotter("overlayfs")
	ctx := namespaces.WithNamespace(context.Background(), "gc")
	if _, err := sn.Prepare(ctx, "k-base", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "k-base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "c1-root", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "c1-extra", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "loose", ""); err != nil {
		t.Fatal(err)
	}
	data := []byte("checkpoint")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, db.ContentStore(), "blob", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	c := testContainer("c1", "overlayfs", "c1-root", map[string]string{
		"containerd.io/gc.ref.content.checkpoint": desc.Digest.String(),
		"containerd.io/gc.ref.snapshot.overlayfs": "c1-extra",
	})
	if _, err := db.Containers().Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"c1-root", "base", "c1-extra"} {
		if _, err := sn.Stat(ctx, key); err != nil {
			t.Errorf("snapshot %s after GC with the container: %v, want it kept", key, err)
		}
	}
	if _, err := sn.Stat(ctx, "loose"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("snapshot loose after GC = %v, want not found", err)
	}
	if _, err := db.ContentStore().Info(ctx, desc.Digest); err != nil {
		t.Errorf("blob named by the container's label after GC: %v, want it kept", err)
	}
	if n := len(backendNames(t, backend)); n != 3 {
		t.Errorf("%d backend snapshots with the container, want 3", n)
	}

	if err := db.Containers().Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		t.Errorf("snapshot %s left after the container's deletion and GC", info.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if names := backendNames(t, backend); len(names) != 0 {
		t.Errorf("backend snapshots left: %q", names)
	}
	if _, err := db.ContentStore().Info(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("blob after the container's deletion and GC = %v, want not found", err)
	}
}

// TestNamespaceWithContainers: a namespace holding a container cannot be
// deleted, and the error says why.
func TestNamespaceWithContainers(t *testing.T) {
	db := newDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "busy")
	if _, err := db.Containers().Create(ctx, testContainer("c1", "", "", nil)); err != nil {
		t.Fatal(err)
	}
	err := db.Namespaces().Delete(ctx, "busy")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "containers") || !strings.Contains(err.Error(), `"busy"`) {
		t.Fatalf("Delete(namespace with a container) = %v, want failed precondition naming the namespace and its containers", err)
	}
	if _, err := db.Containers().Get(ctx, "c1"); err != nil {
		t.Fatalf("container after the refused namespace delete: %v", err)
	}
	if err := db.Containers().Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Namespaces().Delete(ctx, "busy"); err != nil {
		t.Fatalf("Delete(namespace emptied of containers) = %v", err)
	}
}
