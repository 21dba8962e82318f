package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
