package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/snapshots"
)

func newDirs(t *testing.T) (*Dirs, string) {
	t.Helper()
	root := t.TempDir()
	ms, err := NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	d, err := NewDirs(ms, filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return d, filepath.Join(root, "snapshots")
}

func mkfs(dir string, _ []string) error { return os.Mkdir(filepath.Join(dir, "fs"), 0o755) }

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestCrashLeftovers puts what a crash at each step leaves under the root
// and checks that Create and Cleanup cope.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	d, root := newDirs(t)
	s1, err := d.Create(ctx, snapshots.KindActive, "a", "", nil, mkfs)
	if err != nil {
		t.Fatal(err)
	}
	// Crash after a rename into id 2 whose transaction never committed:
	// the sequence is rolled back, so the next Create gets id 2 again.
	if err := os.MkdirAll(filepath.Join(root, "2", "fs", "junk"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Crashes inside Create (before the rename) and Remove (after the
	// record went, before or during RemoveAll).
	for _, dir := range []string{"new-123", "rm-7", "9"} {
		if err := os.MkdirAll(filepath.Join(root, dir, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := d.Create(ctx, snapshots.KindActive, "b", "", nil, mkfs)
	if err != nil {
		t.Fatalf("Create over a stale directory of its id = %v", err)
	}
	if s2.ID != "2" {
		t.Fatalf("second id = %s, want 2 (the test assumes sequence ids)", s2.ID)
	}
	if _, err := os.Stat(filepath.Join(root, "2", "fs", "junk")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale content visible in the new snapshot: %v", err)
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := entries(t, root), []string{s1.ID, s2.ID}; !slices.Equal(got, want) {
		t.Fatalf("after Cleanup: %v, want %v", got, want)
	}
	if err := d.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, want := entries(t, root), []string{s2.ID}; !slices.Equal(got, want) {
		t.Fatalf("after Remove: %v, want %v", got, want)
	}
	// A failing fill leaves nothing behind and no record.
	_, err = d.Create(ctx, snapshots.KindActive, "c", "", nil, func(string, []string) error { return errdefs.ErrDataLoss })
	if !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("Create with a failing fill = %v", err)
	}
	if got, want := entries(t, root), []string{s2.ID}; !slices.Equal(got, want) {
		t.Fatalf("after a failed Create: %v, want %v", got, want)
	}
	if err := d.ms.View(ctx, func(tx *Tx) error { _, err := tx.Get("c"); return err }); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("record of a failed Create: %v", err)
	}
}

// TestParentIDs checks the lowerdir order and the children bookkeeping
// through Commit.
func TestParentIDs(t *testing.T) {
	ctx := context.Background()
	d, _ := newDirs(t)
	var want []string
	parent := ""
	for _, name := range []string{"l1", "l2", "l3"} {
		s, err := d.Create(ctx, snapshots.KindActive, "k-"+name, parent, nil, mkfs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.ParentIDs, want) {
			t.Fatalf("ParentIDs of %s = %v, want %v", name, s.ParentIDs, want)
		}
		err = d.ms.Update(ctx, func(tx *Tx) error {
			id, err := tx.Commit("k-"+name, name, snapshots.Usage{Size: 1, Inodes: 1})
			if err == nil && id != s.ID {
				t.Errorf("Commit changed the id: %s → %s", s.ID, id)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{s.ID}, want...)
		parent = name
	}
	err := d.ms.View(ctx, func(tx *Tx) error {
		for name, n := range map[string]int{"l1": 1, "l2": 1, "l3": 0} {
			if got, err := tx.Children(name); err != nil || got != n {
				t.Errorf("Children(%s) = %d, %v; want %d", name, got, err, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
