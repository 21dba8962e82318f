package metadata_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/contenttest"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
)

func kinds(rep metadata.FsckReport) map[string]int {
	m := map[string]int{}
	for _, p := range rep.Problems {
		m[p.Kind]++
	}
	return m
}

func TestFsck(t *testing.T) {
	db, blobs, dir := newStore(t)
	ctx := namespaces.WithNamespace(context.Background(), "fsck")
	cs := db.ContentStore()
	var descs []ocispec.Descriptor
	for i := 0; i < 4; i++ {
		data, desc := contenttest.Blob(int64(i), 10000+i)
		if err := content.WriteBlob(ctx, cs, "b", bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}

	rep, err := db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged() || len(rep.Problems) != 0 || rep.BlobsChecked != 4 || rep.Records != 4 {
		t.Fatalf("fsck of a clean store = %+v", rep)
	}

	path := func(d digest.Digest) string { p, _ := blobs.BlobPath(d); return p }
	// Damage: flip a byte of one blob, delete another, change a third's size.
	corrupt := path(descs[0].Digest)
	os.Chmod(corrupt, 0o644)
	b, _ := os.ReadFile(corrupt)
	b[100] ^= 0xff
	os.WriteFile(corrupt, b, 0o444)
	os.Remove(path(descs[1].Digest))
	// Debris that is not damage: a blob no record names, an ingest with
	// no record, a broken ingest directory.
	orphan := []byte("orphan blob")
	od := digest.FromBytes(orphan)
	os.WriteFile(path(od), orphan, 0o444)
	w, err := blobs.Writer(ctx, content.WithRef("stray"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	os.MkdirAll(filepath.Join(dir, "content", "ingest", "deadbeef"), 0o700)

	rep, err = db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(rep)
	want := map[string]int{"corrupt-blob": 1, "missing-blob": 1, "unreferenced-blob": 1, "orphan-ingest": 1, "broken-ingest": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("fsck found %d %s, want %d (all: %+v)", got[k], k, n, rep.Problems)
		}
	}
	if !rep.Damaged() {
		t.Fatal("fsck of a damaged store says not damaged")
	}

	rep, err = db.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged() {
		t.Fatalf("damage left after repair: %+v", rep.Problems)
	}
	rep, err = db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged() || kinds(rep)["broken-ingest"] != 0 {
		t.Fatalf("fsck after repair = %+v", rep.Problems)
	}
	for i, d := range descs {
		_, err := cs.Info(ctx, d.Digest)
		if present := err == nil; present != (i >= 2) {
			t.Errorf("blob %d present after repair = %v", i, present)
		}
	}
	// GC removes the debris fsck reported.
	if _, err := db.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path(od)); !os.IsNotExist(err) {
		t.Fatalf("unreferenced blob after GC: %v", err)
	}
}

func TestFsckImagesAndIngestRecords(t *testing.T) {
	db, blobs, _ := newStore(t)
	ctx := namespaces.WithNamespace(context.Background(), "fsck")
	cs := db.ContentStore()

	// An ingest whose data vanished leaves a stale record.
	w, err := cs.Writer(ctx, content.WithRef("gone"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	w.Close()
	if err := blobs.Abort(ctx, "fsck/gone"); err != nil {
		t.Fatal(err)
	}
	// An image whose root blob is absent, and one whose manifest is garbage.
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 6}
	if _, err := db.Images().Create(ctx, images.Image{Name: "absent:1", Target: absent}); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("{not json")
	gdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(garbage), Size: int64(len(garbage))}
	if err := content.WriteBlob(ctx, cs, "g", bytes.NewReader(garbage), gdesc); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Create(ctx, images.Image{Name: "garbage:1", Target: gdesc}); err != nil {
		t.Fatal(err)
	}

	rep, err := db.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(rep)
	for k, n := range map[string]int{"stale-record": 1, "missing-image-root": 1, "bad-manifest": 1} {
		if got[k] != n {
			t.Errorf("fsck found %d %s, want %d (all: %+v)", got[k], k, n, rep.Problems)
		}
	}
	if !rep.Damaged() {
		t.Fatal("broken images must leave the store damaged: repair cannot invent their blobs")
	}
	if _, err := cs.Status(ctx, "gone"); err == nil {
		t.Fatal("stale ingest record survived repair")
	}
	// Removing the broken images is the fix.
	db.Images().Delete(ctx, "absent:1")
	db.Images().Delete(ctx, "garbage:1")
	if rep, _ := db.Fsck(ctx, false); rep.Damaged() {
		t.Fatalf("fsck after removing the broken images: %+v", rep.Problems)
	}
}
