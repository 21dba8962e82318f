package metadata_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
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

	// Issue 11, item 4: fsck names the image, its namespace, the blob and
	// the parse error, and says what --repair does.
	rep, err := db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	bad := find(rep, "bad-manifest")
	if bad == nil || bad.Namespace != "fsck" || bad.Image != "garbage:1" || bad.Digest != gdesc.Digest || bad.Object != "fsck/garbage:1" ||
		!strings.Contains(bad.Detail, gdesc.Digest.String()) || !strings.Contains(bad.Detail, "invalid character") ||
		!strings.Contains(bad.Detail, "strata fsck --repair removes the image") || !bad.Damage || bad.Repaired {
		t.Fatalf("fsck of an image with a garbage manifest: %+v", rep.Problems)
	}
	if _, err := db.Images().Get(ctx, "garbage:1"); err != nil {
		t.Fatalf("fsck without --repair removed an image: %v", err)
	}

	rep, err = db.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(rep)
	for k, n := range map[string]int{"stale-record": 1, "missing-image-root": 1, "bad-manifest": 1} {
		if got[k] != n {
			t.Errorf("fsck found %d %s, want %d (all: %+v)", got[k], k, n, rep.Problems)
		}
	}
	if bad := find(rep, "bad-manifest"); bad == nil || !bad.Repaired || !strings.Contains(bad.Detail, "removed the image") {
		t.Errorf("fsck --repair of an image with a garbage manifest: %+v", bad)
	}
	if _, err := db.Images().Get(ctx, "garbage:1"); !errdefs.IsNotFound(err) {
		t.Errorf("image with a garbage manifest after fsck --repair: %v", err)
	}
	if !rep.Damaged() {
		t.Fatal("an image without its root must leave the store damaged: repair cannot invent its blobs")
	}
	if _, err := cs.Status(ctx, "gone"); err == nil {
		t.Fatal("stale ingest record survived repair")
	}
	// Removing the image that lost its root is the fix.
	if err := db.Images().Delete(ctx, "absent:1"); err != nil {
		t.Fatal(err)
	}
	if rep, _ := db.Fsck(ctx, false); rep.Damaged() {
		t.Fatalf("fsck after removing the broken images: %+v", rep.Problems)
	}
}

// TestFsckCorruptManifest: a manifest that cannot be parsed because its
// blob is corrupt on disk is the corrupt-blob repair's: the blob goes, the
// image stays for the user to pull again.
func TestFsckCorruptManifest(t *testing.T) {
	db, blobs, _ := newStore(t)
	ctx := namespaces.WithNamespace(context.Background(), "fsck")
	cs := db.ContentStore()
	mb := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := content.WriteBlob(ctx, cs, "m", bytes.NewReader(mb), mdesc); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Create(ctx, images.Image{Name: "app:1", Target: mdesc}); err != nil {
		t.Fatal(err)
	}
	p, _ := blobs.BlobPath(mdesc.Digest)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, bytes.Repeat([]byte{'{'}, len(mb)), 0o444); err != nil {
		t.Fatal(err)
	}

	rep, err := db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	bad := find(rep, "bad-manifest")
	if find(rep, "corrupt-blob") == nil || bad == nil || !strings.Contains(bad.Detail, "corrupt") || bad.Image != "app:1" {
		t.Fatalf("fsck of an image whose manifest blob is corrupt: %+v", rep.Problems)
	}
	rep, err = db.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if cb := find(rep, "corrupt-blob"); cb == nil || !cb.Repaired {
		t.Fatalf("fsck --repair: %+v", rep.Problems)
	}
	if bad := find(rep, "bad-manifest"); bad == nil || bad.Repaired || !rep.Damaged() {
		t.Fatalf("fsck --repair must leave the image to be pulled again: %+v", rep.Problems)
	}
	if _, err := db.Images().Get(ctx, "app:1"); err != nil {
		t.Fatalf("image after fsck --repair: %v", err)
	}
	rep, err = db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(rep); got["missing-image-root"] != 1 || len(rep.Problems) != 1 {
		t.Fatalf("fsck after the repair = %+v", rep.Problems)
	}
}

// TestFsckListsIngests: issue 11, item 6. Partial writes are listed with
// their namespace, size and age; they are not damage.
func TestFsckListsIngests(t *testing.T) {
	db, blobs, _ := newStore(t)
	ctx := namespaces.WithNamespace(context.Background(), "fsck")
	cs := db.ContentStore()
	data, desc := contenttest.Blob(7, 5000)
	w, err := cs.Writer(ctx, content.WithRef("partial"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:1000])
	w.Close()
	busy, err := cs.Writer(ctx, content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.Write([]byte("abc"))
	stray, err := blobs.Writer(ctx, content.WithRef("stray"))
	if err != nil {
		t.Fatal(err)
	}
	stray.Write([]byte("partial"))
	stray.Close()

	rep, err := db.Fsck(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged() || len(rep.Problems) != 1 || rep.Problems[0].Kind != "orphan-ingest" {
		t.Fatalf("fsck with partial writes: %+v", rep.Problems)
	}
	byRef := map[string]metadata.Ingest{}
	for _, in := range rep.Ingests {
		byRef[in.Ref] = in
	}
	if len(byRef) != 3 {
		t.Fatalf("fsck lists ingests %+v, want partial, busy and stray", rep.Ingests)
	}
	p := byRef["partial"]
	if p.Namespace != "fsck" || p.Size != 1000 || p.Total != 5000 || p.Expected != desc.Digest || p.Active ||
		p.StartedAt.IsZero() || p.UpdatedAt.IsZero() || p.AgeSeconds < 0 {
		t.Errorf("partial ingest listed as %+v", p)
	}
	if b := byRef["busy"]; b.Namespace != "fsck" || !b.Active {
		t.Errorf("ingest with a writer listed as %+v", b)
	}
	if s := byRef["stray"]; s.Namespace != "" || s.Size != int64(len("partial")) {
		t.Errorf("ingest without a record listed as %+v", s)
	}
}

func find(rep metadata.FsckReport, kind string) *metadata.Problem {
	for i := range rep.Problems {
		if rep.Problems[i].Kind == kind {
			return &rep.Problems[i]
		}
	}
	return nil
}
