package metadata_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

// smallStore opens a database whose content store is a tmpfs of size
// bytes.
func smallStore(t *testing.T, size int64, opts ...metadata.Opt) (*metadata.DB, string) {
	t.Helper()
	dir := t.TempDir()
	contentDir := filepath.Join(dir, "content")
	testutil.SmallFS(t, contentDir, size)
	blobs, err := local.New(contentDir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(context.Background(), filepath.Join(dir, "metadata.db"), blobs, append([]metadata.Opt{metadata.WithGCDelay(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return db, contentDir
}

// writeIngest leaves an ingest of n bytes, last written age ago.
func writeIngest(t *testing.T, ctx context.Context, db *metadata.DB, contentDir, ref string, n int, age time.Duration) {
	t.Helper()
	w, err := db.ContentStore().Writer(ctx, content.WithRef(ref))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{'x'}, n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ns, _ := namespaces.Namespace(ctx)
	sum := sha256.Sum256([]byte(ns + "/" + ref))
	data := filepath.Join(contentDir, "ingest", hex.EncodeToString(sum[:]), "data")
	when := time.Now().Add(-age)
	if err := os.Chtimes(data, when, when); err != nil {
		t.Fatal(err)
	}
}

func ingestRefs(t *testing.T, ctx context.Context, db *metadata.DB) []string {
	t.Helper()
	sts, err := db.ContentStore().ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range sts {
		out = append(out, st.Ref)
	}
	slices.Sort(out)
	return out
}

// TestGCMinFreeDropsOldestIngests: under a free space threshold, a
// collection drops partial downloads the least recently written first,
// until the threshold is met, and never one a writer holds; without it,
// partial downloads younger than the grace stay (issue 11, item 7).
func TestGCMinFreeDropsOldestIngests(t *testing.T) {
	const mib = 1 << 20
	db, contentDir := smallStore(t, 8*mib, metadata.WithMinFree(metadata.MinFree{Bytes: 5 * mib}))
	ctx := namespaces.WithNamespace(context.Background(), "default")

	// busy is the oldest, but a writer holds it.
	busy, err := db.ContentStore().Writer(ctx, content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := busy.Write(make([]byte, mib/2)); err != nil {
		t.Fatal(err)
	}
	// Written in an order other than their ages.
	writeIngest(t, ctx, db, contentDir, "mid", 2*mib, 2*time.Hour)
	writeIngest(t, ctx, db, contentDir, "new", 2*mib, time.Hour)
	writeIngest(t, ctx, db, contentDir, "old", 2*mib, 3*time.Hour)
	free := testutil.FreeBytes(t, contentDir)
	if free >= 5*mib || free < 3*mib/2 {
		t.Fatalf("%d bytes free before the collection; the test wants between 1.5 and 5 MiB", free)
	}

	// A dry run says what it would drop and drops nothing.
	st, err := db.GarbageCollect(ctx, metadata.GCOptions{DryRun: true, List: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ingest default/old", "ingest default/mid"}; !slices.Equal(st.Removed, want) {
		t.Fatalf("dry run would remove %q, want %q", st.Removed, want)
	}
	if got, want := ingestRefs(t, ctx, db), []string{"busy", "mid", "new", "old"}; !slices.Equal(got, want) {
		t.Fatalf("after a dry run ingests = %q, want %q", got, want)
	}

	st, err = db.GarbageCollect(ctx, metadata.GCOptions{List: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ingest default/old", "ingest default/mid"}; !slices.Equal(st.Removed, want) {
		t.Fatalf("collection removed %q, want %q", st.Removed, want)
	}
	if got, want := ingestRefs(t, ctx, db), []string{"busy", "new"}; !slices.Equal(got, want) {
		t.Fatalf("ingests after the collection = %q, want %q", got, want)
	}
	// busy's bytes may still sit in its writer's buffer.
	if st.IngestsKept != 2 || st.IngestBytesKept < 2*mib || st.IngestBytesKept > 2*mib+mib/2 {
		t.Fatalf("stats say %d ingests of %d bytes kept, want 2 of 2 to 2.5 MiB", st.IngestsKept, st.IngestBytesKept)
	}
	if free := testutil.FreeBytes(t, contentDir); free < 5*mib {
		t.Fatalf("%d bytes free after the collection, want at least 5 MiB", free)
	}

	// Above the threshold nothing more goes.
	st, err = db.GarbageCollect(ctx, metadata.GCOptions{List: true})
	if err != nil || len(st.Removed) != 0 {
		t.Fatalf("second collection = %q, %v; want nothing removed", st.Removed, err)
	}
}

// TestGCDropIngests: DropIngests drops every partial download no writer
// holds, young or leased, records and data (issue 11, item 7).
func TestGCDropIngests(t *testing.T) {
	db, blobs, _ := newStore(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	l, err := db.Leases().Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"young", "leased"} {
		c := ctx
		if ref == "leased" {
			c = leases.WithLease(ctx, l.ID)
		}
		w, err := db.ContentStore().Writer(c, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial " + ref))
		w.Close()
	}
	busy, err := db.ContentStore().Writer(ctx, content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.Write([]byte("in use"))

	st, err := db.GarbageCollect(ctx, metadata.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ingestRefs(t, ctx, db), []string{"busy", "leased", "young"}; !slices.Equal(got, want) || st.IngestsKept != 3 {
		t.Fatalf("plain collection: ingests %q (%d kept), want %q", got, st.IngestsKept, want)
	}
	// busy's bytes may still sit in its writer's buffer.
	if n := int64(len("partial young") + len("partial leased")); st.IngestBytesKept < n || st.IngestBytesKept > n+int64(len("in use")) {
		t.Fatalf("stats say ingests hold %d bytes", st.IngestBytesKept)
	}
	st, err = db.GarbageCollect(ctx, metadata.GCOptions{DropIngests: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ingestRefs(t, ctx, db), []string{"busy"}; !slices.Equal(got, want) || st.IngestsRemoved != 2 || st.IngestsKept != 1 {
		t.Fatalf("collection dropping ingests: ingests %q, stats %+v; want %q", got, st, want)
	}
	if sts, err := blobs.ListStatuses(ctx); err != nil || len(sts) != 1 {
		t.Fatalf("ingest data left: %+v, %v; want only busy's", sts, err)
	}
}
