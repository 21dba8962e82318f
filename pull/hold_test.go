package pull

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/wiring"
)

// TestHoldAfterCollection (issue 11, item 9): the pull's hold step is also
// its check. A blob the pull saw, then a collection removed, is not held
// (it was: AddResource holds any name, and the image got recorded without
// the blob); the pull is told it is gone and fetches it. A blob held
// survives the next collection.
func TestHoldAfterCollection(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	st, err := wiring.Open(ctx, wiring.Config{Root: t.TempDir(), GCDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	cs := st.DB.ContentStore()
	write := func(body string) digest.Digest {
		t.Helper()
		desc := ocispec.Descriptor{Digest: digest.FromString(body), Size: int64(len(body))}
		if err := content.WriteBlob(ctx, cs, "w-"+desc.Digest.Encoded(), strings.NewReader(body), desc); err != nil {
			t.Fatal(err)
		}
		return desc.Digest
	}
	collect := func() {
		t.Helper()
		if _, err := st.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := st.DB.Leases().Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pl := &pull{Puller: New(st, nil), cs: cs, lease: l, sink: nopSink{}}

	// A layer of a deleted image: there when the pull looks...
	gone := write("layer of a deleted image")
	if _, err := cs.Info(ctx, gone); err != nil {
		t.Fatal(err)
	}
	// ...collected before the pull holds it.
	collect()
	if err := pl.hold(ctx, gone); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("hold of a blob a collection removed = %v, want not found (fetch it)", err)
	}
	rs, err := st.DB.Leases().ListResources(ctx, l)
	if err != nil || len(rs) != 0 {
		t.Fatalf("lease holds %v, %v after a failed hold, want nothing", rs, err)
	}

	kept := write("layer held in time")
	if err := pl.hold(ctx, kept); err != nil {
		t.Fatal(err)
	}
	collect()
	if _, err := content.ReadBlob(ctx, cs, ocispec.Descriptor{Digest: kept}, 0); err != nil {
		t.Fatalf("held blob after a collection: %v", err)
	}
	// The snapshot step: a chain snapshot seen, then collected, is applied
	// again rather than held.
	sn := st.Snapshotter("")
	if _, err := sn.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "sha256:chain", "k"); err != nil {
		t.Fatal(err)
	}
	collect()
	err = st.DB.Leases().HoldExisting(ctx, l, leases.Resource{ID: "sha256:chain", Type: "snapshots/" + st.DefaultSnapshotter})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("hold of a snapshot a collection removed = %v, want not found", err)
	}
}
