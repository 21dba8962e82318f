package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/content"
)

// TestBrokenIngestsSkipsHeld: an ingest directory a writer holds is being
// created (its ref file comes last) or removed after its commit; fsck must
// not call it broken, nor its --repair remove it under the writer.
func TestBrokenIngestsSkipsHeld(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(context.Background(), content.WithRef("held"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The directory as it is before its writer writes the ref file.
	if err := os.Remove(filepath.Join(s.ingestDir("held"), "ref")); err != nil {
		t.Fatal(err)
	}
	if broken, err := s.BrokenIngests(); err != nil || len(broken) != 0 {
		t.Fatalf("BrokenIngests while its writer holds it = %q, %v", broken, err)
	}
	w.Close()
	if broken, err := s.BrokenIngests(); err != nil || len(broken) != 1 || broken[0] != s.ingestDir("held") {
		t.Fatalf("BrokenIngests once its writer let go = %q, %v; want %q", broken, err, s.ingestDir("held"))
	}
}

// TestRemoveBrokenIngestRace: a directory fsck listed as broken that a
// writer has taken since is not removed under it; one still broken is.
func TestRemoveBrokenIngestRace(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ref := range []string{"taken", "left"} {
		if err := os.Mkdir(s.ingestDir(ref), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	broken, err := s.BrokenIngests()
	if err != nil || len(broken) != 2 {
		t.Fatalf("BrokenIngests = %q, %v; want two", broken, err)
	}
	// A pull takes "taken" over (and starts it afresh) after the listing.
	w, err := s.Writer(ctx, content.WithRef("taken"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, p := range broken {
		removed, err := s.RemoveBrokenIngest(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := p == s.ingestDir("left"); removed != want {
			t.Errorf("RemoveBrokenIngest(%s) = %v, want %v", p, removed, want)
		}
	}
	data := []byte("the writer's data")
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, int64(len(data)), ""); err != nil {
		t.Fatalf("commit of an ingest fsck listed as broken before its writer took it: %v", err)
	}
	if _, err := s.RemoveBrokenIngest(filepath.Join(s.Root(), "blobs")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("RemoveBrokenIngest outside the ingest directory = %v", err)
	}
}
