package metadata_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/strata-oci/strata/content/contenttest"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/metadata"
)

// newDB opens a fresh database whose scheduled collections never run on
// their own, so tests see exactly what they cause.
func newDB(t *testing.T, opts ...metadata.Opt) *metadata.DB {
	t.Helper()
	db, _, _ := newStore(t, opts...)
	return db
}

// newStore is newDB that also returns the blob store under the database
// and the directory holding both, for tests that damage them.
func newStore(t *testing.T, opts ...metadata.Opt) (*metadata.DB, *local.Store, string) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := local.New(filepath.Join(dir, "content"))
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
	return db, blobs, dir
}

func TestContentConformance(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) contenttest.Setup {
		return contenttest.Setup{Store: newDB(t).ContentStore(), Labels: true, Namespaced: true}
	})
}
