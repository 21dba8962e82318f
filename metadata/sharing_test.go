package metadata_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
)

// TestContentSharingPolicies (issue 12, item 2): with the shared policy
// (containerd's default) a writer in namespace B for a blob namespace A has
// is complete at once and its Commit adds the blob to B, no bytes sent and
// no AlreadyExists; with the isolated policy B writes the bytes itself,
// unless A is labelled containerd.io/namespace.shareable=true.
func TestContentSharingPolicies(t *testing.T) {
	data := []byte("a blob namespace a wrote first")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	setup := func(t *testing.T, policy metadata.SharingPolicy) (*metadata.DB, context.Context) {
		db := newDB(t, metadata.WithSharingPolicy(policy))
		a := namespaces.WithNamespace(context.Background(), "a")
		if err := content.WriteBlob(a, db.ContentStore(), "a-ref", bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		return db, namespaces.WithNamespace(context.Background(), "b")
	}
	open := func(t *testing.T, db *metadata.DB, ctx context.Context) (content.Writer, content.Status) {
		t.Helper()
		w, err := db.ContentStore().Writer(ctx, content.WithRef("b-ref"), content.WithDescriptor(desc))
		if err != nil {
			t.Fatalf("Writer in namespace b = %v, want a writer", err)
		}
		st, err := w.Status()
		if err != nil {
			t.Fatal(err)
		}
		return w, st
	}

	t.Run("shared", func(t *testing.T) {
		db, b := setup(t, metadata.SharingShared)
		w, st := open(t, db, b)
		defer w.Close()
		if st.Offset != desc.Size || st.Total != desc.Size || w.Digest() != desc.Digest {
			t.Fatalf("shared writer: status %+v, digest %s; want offset = total = %d, digest %s", st, w.Digest(), desc.Size, desc.Digest)
		}
		if err := w.Commit(b, desc.Size, desc.Digest, content.WithLabels(map[string]string{"k": "v"})); err != nil {
			t.Fatalf("Commit of a shared writer = %v, want nil", err)
		}
		info, err := db.ContentStore().Info(b, desc.Digest)
		if err != nil || info.Labels["k"] != "v" {
			t.Fatalf("Info in namespace b = %+v, %v; want the blob with its label", info, err)
		}
		// Now b has it: AlreadyExists, as containerd says for a namespace's own blob.
		if _, err := db.ContentStore().Writer(b, content.WithRef("again"), content.WithDescriptor(desc)); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("Writer for a blob b has = %v, want AlreadyExists", err)
		}
	})

	t.Run("shared then appended", func(t *testing.T) {
		db, b := setup(t, metadata.SharingShared)
		w, _ := open(t, db, b)
		defer w.Close()
		extra := []byte(" and more")
		if _, err := w.Write(extra); err != nil {
			t.Fatal(err)
		}
		all := append(append([]byte(nil), data...), extra...)
		if err := w.Commit(b, int64(len(all)), digest.FromBytes(all)); err != nil {
			t.Fatalf("Commit of the appended blob = %v", err)
		}
		got, err := content.ReadBlob(b, db.ContentStore(), ocispec.Descriptor{Digest: digest.FromBytes(all)}, 0)
		if err != nil || !bytes.Equal(got, all) {
			t.Fatalf("appended blob = %q, %v; want %q", got, err, all)
		}
	})

	t.Run("isolated", func(t *testing.T) {
		db, b := setup(t, metadata.SharingIsolated)
		w, st := open(t, db, b)
		defer w.Close()
		if st.Offset != 0 {
			t.Fatalf("isolated writer starts at %d, want 0: b must send the bytes", st.Offset)
		}
		if err := w.Commit(b, desc.Size, desc.Digest); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Commit without the bytes = %v, want FailedPrecondition", err)
		}
		if _, err := db.ContentStore().Info(b, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("Info in b before it wrote the bytes = %v, want NotFound", err)
		}
		w.Close()
		if err := content.WriteBlob(b, db.ContentStore(), "b-ref", bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ContentStore().Info(b, desc.Digest); err != nil {
			t.Fatalf("Info in b after it wrote the bytes = %v", err)
		}
	})

	t.Run("isolated from a shareable namespace", func(t *testing.T) {
		db, b := setup(t, metadata.SharingIsolated)
		if err := db.Namespaces().SetLabel(context.Background(), "a", "containerd.io/namespace.shareable", "true"); err != nil {
			t.Fatal(err)
		}
		w, st := open(t, db, b)
		defer w.Close()
		if st.Offset != desc.Size {
			t.Fatalf("writer for a shareable namespace's blob starts at %d, want %d", st.Offset, desc.Size)
		}
		if err := w.Commit(b, desc.Size, desc.Digest); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAbortHeldIngest (issue 12, item 3): aborting an ingest that a writer
// still holds succeeds for the aborting client, as containerd's does; the
// writer's Commit then fails and nothing is recorded.
func TestAbortHeldIngest(t *testing.T) {
	db := newDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	cs := db.ContentStore()
	data := []byte("never committed")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	w, err := cs.Writer(ctx, content.WithRef("held"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data[:5]); err != nil {
		t.Fatal(err)
	}
	// strata's own cleanups leave a held ingest alone.
	if err := db.ContentStore().AbortIdle(ctx, "held"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("AbortIdle of an ingest a writer holds = %v, want unavailable", err)
	}
	if _, err := cs.Status(ctx, "held"); err != nil {
		t.Fatalf("Status after AbortIdle = %v, want the ingest kept", err)
	}
	if err := cs.Abort(ctx, "held"); err != nil {
		t.Fatalf("Abort of an ingest a writer holds = %v, want nil", err)
	}
	if _, err := cs.Status(ctx, "held"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Status after Abort = %v, want NotFound", err)
	}
	if _, err := w.Write(data[5:]); err == nil {
		if err := w.Commit(ctx, desc.Size, desc.Digest); err == nil {
			t.Fatal("Commit of an aborted ingest succeeded")
		}
	}
	if _, err := cs.Info(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Info after the aborted writer's Commit = %v, want NotFound", err)
	}
}
