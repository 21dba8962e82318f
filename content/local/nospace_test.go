package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/testutil"
)

// TestWriterNoSpace: an ingest that cannot be created for lack of space
// fails with ENOSPC and leaves no half-made directory behind (issue 11,
// item 7).
func TestWriterNoSpace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "content")
	testutil.SmallFS(t, dir, 64<<10)
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the filesystem.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	_, err = s.Writer(context.Background(), content.WithRef("full"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Writer on a full filesystem = %v, want ENOSPC", err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "ingest")); err != nil || len(ents) != 0 {
		t.Fatalf("ingest directory after a failed Writer: %v, %v; want empty", ents, err)
	}
}
