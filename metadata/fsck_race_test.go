package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/contenttest"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/namespaces"
)

// pausingBackend is the real local store, except that the nth reader
// opened on blob dgst waits, once open, until the test releases it: fsck
// is then in the middle of its work, as it is for minutes on a large store.
type pausingBackend struct {
	Backend
	dgst    digest.Digest
	nth     int
	paused  chan struct{} // closed when the reader waits
	release chan struct{} // closed by the test

	mu    sync.Mutex
	opens int
}

func (b *pausingBackend) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := b.Backend.ReaderAt(ctx, desc)
	if err != nil || desc.Digest != b.dgst {
		return ra, err
	}
	b.mu.Lock()
	b.opens++
	n := b.opens
	b.mu.Unlock()
	if n == b.nth {
		close(b.paused)
		<-b.release
	}
	return ra, nil
}

func openPausingDB(t *testing.T) (*DB, *local.Store, *pausingBackend) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := local.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	pb := &pausingBackend{Backend: blobs, paused: make(chan struct{}), release: make(chan struct{})}
	db, err := Open(context.Background(), filepath.Join(dir, "metadata.db"), pb, WithGCDelay(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, blobs, pb
}

// pausedFsck starts db.Fsck and returns once it waits in pb's reader of
// dgst's nth opening; finish lets it go on and returns its report. It
// fails the test at once when fsck holds the store's write lock there.
func pausedFsck(ctx context.Context, t *testing.T, db *DB, pb *pausingBackend, dgst digest.Digest, nth int, repair bool) (finish func() FsckReport) {
	t.Helper()
	pb.dgst, pb.nth = dgst, nth
	type result struct {
		rep FsckReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := db.Fsck(ctx, repair)
		done <- result{rep, err}
	}()
	var once sync.Once
	release := func() { once.Do(func() { close(pb.release) }) }
	res := sync.OnceValue(func() result { release(); return <-done })
	t.Cleanup(func() { res() })
	select {
	case <-pb.paused:
	case r := <-done:
		done <- r
		t.Fatalf("fsck ended (%v) without opening %s %d times", r.err, dgst, nth)
	}
	// Any write would wait for fsck from here on: fail rather than hang.
	if !db.wlock.TryRLock() {
		t.Fatal("fsck holds the store's write lock while it reads blobs: every write waits for it")
	}
	db.wlock.RUnlock()
	return func() FsckReport {
		t.Helper()
		r := res()
		if r.err != nil {
			t.Fatalf("Fsck = %v", r.err)
		}
		return r.rep
	}
}

func writeBlob(ctx context.Context, t *testing.T, cs content.Store, data []byte, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	err := content.WriteBlob(ctx, cs, "w-"+desc.Digest.Encoded(), bytes.NewReader(data), desc, content.WithLabels(labels))
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("WriteBlob %s = %v", desc.Digest, err)
	}
	return desc
}

var gcRoot = map[string]string{lbl.GCRoot: "1"}

// TestFsckDoesNotBlockWrites: issue 11 item 5. fsck rehashes every blob;
// while it does, namespaces, blobs and images are created as usual, and
// what was written meanwhile is not reported.
func TestFsckDoesNotBlockWrites(t *testing.T) {
	db, _, pb := openPausingDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "fsck")
	cs := db.ContentStore()
	var first ocispec.Descriptor
	for i := range 3 {
		data, _ := contenttest.Blob(int64(i), 4096)
		d := writeBlob(ctx, t, cs, data, gcRoot)
		if i == 0 {
			first = d
		}
	}

	finish := pausedFsck(ctx, t, db, pb, first.Digest, 1, false)
	if err := db.Namespaces().Create(ctx, "created-during-fsck", nil); err != nil {
		t.Fatal(err)
	}
	data, _ := contenttest.Blob(99, 8192)
	committed := writeBlob(ctx, t, cs, data, gcRoot)
	if _, err := db.Images().Create(ctx, images.Image{Name: "during:1", Target: ocispec.Descriptor{
		MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: committed.Digest, Size: committed.Size}}); err != nil {
		t.Fatal(err)
	}
	rep := finish()
	if len(rep.Problems) != 0 || rep.Damaged() {
		t.Fatalf("fsck with writes during its hashing reports %+v", rep.Problems)
	}
}

// TestFsckRepairRace: what changed between fsck's look and its repair is
// neither reported nor repaired: a corrupt blob that was collected and
// pulled again whole, a blob committed, one collected, and an image whose
// unparsable manifest was replaced by a good one.
func TestFsckRepairRace(t *testing.T) {
	t.Run("blobs", func(t *testing.T) {
		db, blobs, pb := openPausingDB(t)
		ctx := namespaces.WithNamespace(context.Background(), "fsck")
		cs := db.ContentStore()
		good, _ := contenttest.Blob(1, 64<<10)
		a := writeBlob(ctx, t, cs, good, gcRoot)
		other, _ := contenttest.Blob(2, 4096)
		c := writeBlob(ctx, t, cs, other, gcRoot)
		pa, _ := blobs.BlobPath(a.Digest)
		bad := bytes.Clone(good)
		bad[100] ^= 0xff
		if err := os.Chmod(pa, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pa, bad, 0o444); err != nil {
			t.Fatal(err)
		}

		// fsck has a reader of the corrupt a.
		finish := pausedFsck(ctx, t, db, pb, a.Digest, 1, true)
		// Meanwhile its user deletes a and c, GC collects them, and a
		// pull brings a back, whole, and a new blob b.
		for _, d := range []digest.Digest{a.Digest, c.Digest} {
			if err := cs.Delete(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.GarbageCollect(ctx, GCOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pa); !os.IsNotExist(err) {
			t.Fatalf("GC left the corrupt blob: %v", err)
		}
		writeBlob(ctx, t, cs, good, gcRoot)
		newer, _ := contenttest.Blob(3, 4096)
		b := writeBlob(ctx, t, cs, newer, gcRoot)

		rep := finish()
		if len(rep.Problems) != 0 || rep.Damaged() {
			t.Errorf("fsck --repair racing with GC and commits reports %+v", rep.Problems)
		}
		for _, d := range []ocispec.Descriptor{a, b} {
			if _, err := cs.Info(ctx, d.Digest); err != nil {
				t.Errorf("record of %s after fsck --repair: %v", d.Digest, err)
			}
			if got, err := content.ReadBlob(ctx, cs, d, 0); err != nil || digest.FromBytes(got) != d.Digest {
				t.Errorf("blob %s after fsck --repair: %d bytes, %v", d.Digest, len(got), err)
			}
		}
	})

	t.Run("images", func(t *testing.T) {
		db, _, pb := openPausingDB(t)
		ctx := namespaces.WithNamespace(context.Background(), "fsck")
		cs := db.ContentStore()
		garbage := writeBlob(ctx, t, cs, []byte("{not json"), nil)
		garbage.MediaType = ocispec.MediaTypeImageManifest
		cfg := writeBlob(ctx, t, cs, []byte("{}"), nil)
		cfg.MediaType = ocispec.MediaTypeImageConfig
		mb, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}})
		if err != nil {
			t.Fatal(err)
		}
		manifest := writeBlob(ctx, t, cs, mb, nil)
		manifest.MediaType = ocispec.MediaTypeImageManifest
		if _, err := db.Images().Create(ctx, images.Image{Name: "app:1", Target: garbage}); err != nil {
			t.Fatal(err)
		}

		// The first reader of the garbage hashes it; the second parses it.
		finish := pausedFsck(ctx, t, db, pb, garbage.Digest, 2, true)
		if _, err := db.Images().Update(ctx, images.Image{Name: "app:1", Target: manifest}); err != nil {
			t.Fatal(err)
		}
		rep := finish()
		if len(rep.Problems) != 0 || rep.Damaged() {
			t.Errorf("fsck --repair of an image fixed meanwhile reports %+v", rep.Problems)
		}
		img, err := db.Images().Get(ctx, "app:1")
		if err != nil || img.Target.Digest != manifest.Digest {
			t.Fatalf("image fixed during fsck --repair: %+v, %v", img, err)
		}
	})

	t.Run("manifest pulled again", func(t *testing.T) {
		db, blobs, pb := openPausingDB(t)
		ctx := namespaces.WithNamespace(context.Background(), "fsck")
		cs := db.ContentStore()
		mb, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}})
		if err != nil {
			t.Fatal(err)
		}
		manifest := writeBlob(ctx, t, cs, mb, nil)
		manifest.MediaType = ocispec.MediaTypeImageManifest
		if _, err := db.Images().Create(ctx, images.Image{Name: "app:1", Target: manifest}); err != nil {
			t.Fatal(err)
		}
		p, _ := blobs.BlobPath(manifest.Digest)
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, bytes.Repeat([]byte{'{'}, len(mb)), 0o444); err != nil {
			t.Fatal(err)
		}

		// fsck has hashed the corrupt manifest and is parsing it; the
		// user removes it and pulls it again, whole.
		finish := pausedFsck(ctx, t, db, pb, manifest.Digest, 2, true)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		writeBlob(ctx, t, cs, mb, nil)
		rep := finish()
		if len(rep.Problems) != 0 || rep.Damaged() {
			t.Errorf("fsck --repair of a manifest pulled again meanwhile reports %+v", rep.Problems)
		}
		if _, err := db.Images().Get(ctx, "app:1"); err != nil {
			t.Fatalf("image after fsck --repair: %v", err)
		}
	})
}
