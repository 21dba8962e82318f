package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots/overlay"
)

func writeBlob(ctx context.Context, t *testing.T, cs content.Store, body string) digest.Digest {
	t.Helper()
	desc := ocispec.Descriptor{Digest: digest.FromString(body), Size: int64(len(body))}
	if err := content.WriteBlob(ctx, cs, "w-"+desc.Digest.Encoded(), strings.NewReader(body), desc); err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}

// TestHoldExisting (issue 11, item 9): HoldExisting holds only what the
// namespace has, in one step with the check, so a collection that removed
// a resource after a caller saw it makes the hold fail with NotFound
// instead of holding nothing; AddResource still holds names that do not
// exist yet, as containerd's does.
func TestHoldExisting(t *testing.T) {
	backend, err := overlay.New(filepath.Join(t.TempDir(), "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(t, metadata.WithSnapshotter("overlayfs", backend))
	ctx := namespaces.WithNamespace(context.Background(), "pulls")
	other := namespaces.WithNamespace(context.Background(), "other")
	cs, lm, sn := db.ContentStore(), db.Leases(), db.Snapshotter("overlayfs")
	l, err := lm.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gc := func() {
		t.Helper()
		if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Seen, then collected, then held: the hold says it is gone.
	gone := writeBlob(ctx, t, cs, "collected between the check and the hold")
	if _, err := sn.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "sha256:chain", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Stat(ctx, "sha256:chain"); err != nil {
		t.Fatal(err)
	}
	gc()
	for _, r := range []leases.Resource{{ID: gone.String(), Type: "content"}, {ID: "sha256:chain", Type: "snapshots/overlayfs"}} {
		if err := lm.HoldExisting(ctx, l, r); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("HoldExisting(%s %s) after GC removed it = %v, want not found", r.Type, r.ID, err)
		}
	}
	if rs, err := lm.ListResources(ctx, l); err != nil || len(rs) != 0 {
		t.Fatalf("lease resources after failed holds = %v, %v, want none", rs, err)
	}

	// Held in one step: the next collection keeps them.
	kept := writeBlob(ctx, t, cs, "held before the collection")
	if _, err := sn.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "sha256:chain", "k"); err != nil {
		t.Fatal(err)
	}
	w, err := cs.Writer(ctx, content.WithRef("partial"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("part")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, r := range []leases.Resource{{ID: kept.String(), Type: "content"}, {ID: "sha256:chain", Type: "snapshots/overlayfs"}, {ID: "partial", Type: "ingests"}} {
		if err := lm.HoldExisting(ctx, l, r); err != nil {
			t.Fatalf("HoldExisting(%s %s) = %v", r.Type, r.ID, err)
		}
	}
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ctx, kept); err != nil {
		t.Errorf("held blob after GC: %v", err)
	}
	if _, err := sn.Stat(ctx, "sha256:chain"); err != nil {
		t.Errorf("held snapshot after GC: %v", err)
	}

	// Another namespace's records are not this namespace's.
	theirs := writeBlob(other, t, cs, "only in other")
	if err := lm.HoldExisting(ctx, l, leases.Resource{ID: theirs.String(), Type: "content"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("HoldExisting of another namespace's blob = %v, want not found", err)
	}
	// No lease: a precondition, not a missing resource (callers fetch on
	// NotFound, and would loop).
	if err := lm.HoldExisting(ctx, leases.Lease{ID: "nope"}, leases.Resource{ID: kept.String(), Type: "content"}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("HoldExisting under a missing lease = %v, want failed precondition", err)
	}
	// AddResource stays containerd's: a name may be held before it exists.
	future := digest.FromString("not written yet")
	if err := lm.AddResource(ctx, l, leases.Resource{ID: future.String(), Type: "content"}); err != nil {
		t.Errorf("AddResource of a blob not written yet = %v, want nil (containerd clients do it)", err)
	}
}

// TestHoldExistingDuringGC: blobs written and then held while a collection
// loop runs. Whatever the interleaving, a hold that succeeded protects a blob that is there, and a
// hold that failed found it gone: never a hold of nothing.
func TestHoldExistingDuringGC(t *testing.T) {
	db := newDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "pulls")
	cs, lm := db.ContentStore(), db.Leases()
	l, err := lm.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var blobs []digest.Digest
	// One collection per blob, started as the blob is written: it may run
	// before the write, between the write and the hold, or after the hold.
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range kick {
			if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	held := map[digest.Digest]bool{}
	for i := range n {
		// Written without a lease: garbage until held, if GC lets it be.
		select {
		case kick <- struct{}{}:
		default:
		}
		d := writeBlob(ctx, t, cs, fmt.Sprintf("unreferenced blob %d", i))
		blobs = append(blobs, d)
		err := lm.HoldExisting(ctx, l, leases.Resource{ID: d.String(), Type: "content"})
		switch {
		case err == nil:
			held[d] = true
		case !errors.Is(err, errdefs.ErrNotFound):
			t.Fatal(err)
		}
	}
	close(kick)
	wg.Wait()
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range blobs {
		_, err := content.ReadBlob(ctx, cs, ocispec.Descriptor{Digest: d}, 0)
		if held[d] && err != nil {
			t.Errorf("blob %s was held, and then: %v", d, err)
		}
		if !held[d] && !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("blob %s: hold said not found, read says %v", d, err)
		}
	}
	t.Logf("%d of %d blobs held before a collection took them", len(held), n)
}
