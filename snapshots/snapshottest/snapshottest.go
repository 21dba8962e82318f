// Package snapshottest is the conformance suite every snapshots.Snapshotter
// passes: overlay, native, the namespaced metadata wrapper, and later the
// gRPC client against a daemon. It mounts for real, so it needs root; it
// unmounts what it mounted even when a test fails, and fails a test that
// leaves anything mounted.
package snapshottest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
)

// NewFunc returns a fresh, empty snapshotter keeping its files under root.
// The suite closes it.
type NewFunc func(t *testing.T, root string) snapshots.Snapshotter

// Run runs the suite against the snapshotters newSnapshotter makes.
func Run(t *testing.T, newSnapshotter NewFunc) {
	tests := []struct {
		name string
		fn   func(context.Context, *testing.T, *env)
	}{
		{"Lifecycle", testLifecycle},
		{"Errors", testErrors},
		{"RemoveWithChildren", testRemoveWithChildren},
		{"Labels", testLabels},
		{"WalkFilters", testWalk},
		{"Usage", testUsage},
		{"ViewKinds", testViews},
		{"Cleanup", testCleanup},
		{"Chain128", testChain128},
		{"Close", testClose},
		{"Rebase", testRebase},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if os.Geteuid() != 0 {
				t.Skip("snapshotters mount; the suite needs root")
			}
			dir := t.TempDir()
			// Registered after TempDir, so it runs before the removal.
			t.Cleanup(func() {
				points, err := mount.Under(dir)
				if err != nil {
					t.Error(err)
				}
				if len(points) > 0 {
					t.Errorf("left mounted: %v", points)
					if err := mount.UnmountUnder(dir); err != nil {
						t.Error(err)
					}
				}
			})
			root := filepath.Join(dir, "root")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			e := &env{sn: newSnapshotter(t, root), mnt: filepath.Join(dir, "mnt")}
			t.Cleanup(func() {
				if !e.closed {
					if err := e.sn.Close(); err != nil {
						t.Errorf("Close = %v", err)
					}
				}
			})
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "testing"), 5*time.Minute)
			defer cancel()
			tc.fn(ctx, t, e)
		})
	}
}

type env struct {
	sn     snapshots.Snapshotter
	mnt    string
	n      int
	closed bool
}

// mount mounts mounts on a new directory and returns it with the function
// that unmounts it (also registered with t.Cleanup, for failures).
func (e *env) mount(t *testing.T, mounts []mount.Mount) (string, func()) {
	t.Helper()
	e.n++
	target := filepath.Join(e.mnt, fmt.Sprint(e.n))
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount.All(mounts, target); err != nil {
		t.Fatalf("mount %v: %v", mounts, err)
	}
	done := false
	unmount := func() {
		if done {
			return
		}
		done = true
		if err := mount.UnmountAll(target, 0); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	}
	t.Cleanup(unmount)
	return target, unmount
}

// layer prepares key on parent, lets fill write into it, and commits it as
// name.
func (e *env) layer(ctx context.Context, t *testing.T, name, key, parent string, fill func(root string), opts ...snapshots.Opt) {
	t.Helper()
	mounts, err := e.sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("Prepare(%q, %q) = %v", key, parent, err)
	}
	root, unmount := e.mount(t, mounts)
	if fill != nil {
		fill(root)
	}
	unmount()
	if err := e.sn.Commit(ctx, name, key, opts...); err != nil {
		t.Fatalf("Commit(%q, %q) = %v", name, key, err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if string(b) != want {
		t.Fatalf("%s = %q, want %q", path, b, want)
	}
}

func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: Lstat = %v, want not exist", path, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

func testLifecycle(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "base", "extract-1", "", func(root string) {
		writeFile(t, filepath.Join(root, "etc", "hostname"), []byte("base"))
		writeFile(t, filepath.Join(root, "gone"), []byte("deleted in top"))
		writeFile(t, filepath.Join(root, "dir", "gone-too"), []byte("x"))
		if err := os.Symlink("etc/hostname", filepath.Join(root, "link")); err != nil {
			t.Fatal(err)
		}
	}, snapshots.WithLabels(map[string]string{"layer": "1"}))
	info, err := e.sn.Stat(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshots.KindCommitted || info.Name != "base" || info.Parent != "" || info.Labels["layer"] != "1" || info.Created.IsZero() {
		t.Fatalf("Stat(base) = %+v, want a committed base labelled layer=1", info)
	}
	_, err = e.sn.Stat(ctx, "extract-1")
	wantErr(t, "Stat of the committed active key", err, errdefs.ErrNotFound)

	e.layer(ctx, t, "top", "extract-2", "base", func(root string) {
		wantContent(t, filepath.Join(root, "etc", "hostname"), "base")
		if err := os.Remove(filepath.Join(root, "gone")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(root, "dir")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc", "hostname"), []byte("top"))
		writeFile(t, filepath.Join(root, "new"), []byte("new in top"))
	})
	if info, err := e.sn.Stat(ctx, "top"); err != nil || info.Parent != "base" || info.Kind != snapshots.KindCommitted {
		t.Fatalf("Stat(top) = %+v, %v; want committed on base", info, err)
	}

	// The top layer's view: its changes over the parent's files.
	mounts, err := e.sn.View(ctx, "view-top", "top")
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.sn.Mounts(ctx, "view-top")
	if err != nil || !slices.EqualFunc(mounts, again, func(a, b mount.Mount) bool {
		return a.Type == b.Type && a.Source == b.Source && slices.Equal(a.Options, b.Options)
	}) {
		t.Fatalf("Mounts(view-top) = %v, %v; want %v as View returned", again, err, mounts)
	}
	root, unmount := e.mount(t, mounts)
	wantContent(t, filepath.Join(root, "etc", "hostname"), "top")
	wantContent(t, filepath.Join(root, "new"), "new in top")
	wantAbsent(t, filepath.Join(root, "gone"))
	wantAbsent(t, filepath.Join(root, "dir"))
	if target, err := os.Readlink(filepath.Join(root, "link")); err != nil || target != "etc/hostname" {
		t.Fatalf("link = %q, %v", target, err)
	}
	if err := os.WriteFile(filepath.Join(root, "w"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write into a view = %v, want EROFS", err)
	}
	unmount()

	// The base is unchanged by its child.
	mounts, err = e.sn.View(ctx, "view-base", "base")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount = e.mount(t, mounts)
	wantContent(t, filepath.Join(root, "etc", "hostname"), "base")
	wantContent(t, filepath.Join(root, "gone"), "deleted in top")
	wantAbsent(t, filepath.Join(root, "new"))
	unmount()

	// A container's writable layer over the image.
	mounts, err = e.sn.Prepare(ctx, "container", "top")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount = e.mount(t, mounts)
	wantContent(t, filepath.Join(root, "new"), "new in top")
	writeFile(t, filepath.Join(root, "new"), []byte("changed"))
	unmount()
	root, unmount = e.mount(t, mustMounts(ctx, t, e.sn, "container"))
	wantContent(t, filepath.Join(root, "new"), "changed")
	unmount()

	for _, key := range []string{"container", "view-top", "view-base", "top", "base"} {
		if err := e.sn.Remove(ctx, key); err != nil {
			t.Fatalf("Remove(%q) = %v", key, err)
		}
	}
	if got := keys(ctx, t, e.sn); len(got) != 0 {
		t.Fatalf("after removing everything, Walk = %v", got)
	}
}

func mustMounts(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, key string) []mount.Mount {
	t.Helper()
	m, err := sn.Mounts(ctx, key)
	if err != nil {
		t.Fatalf("Mounts(%q) = %v", key, err)
	}
	return m
}

func keys(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, fs ...string) []string {
	t.Helper()
	var out []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		out = append(out, info.Name)
		return nil
	}, fs...); err != nil {
		t.Fatalf("Walk(%q) = %v", fs, err)
	}
	sort.Strings(out)
	return out
}

func testErrors(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "base", "b", "", nil)
	if _, err := e.sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"Prepare of an existing active key", second(e.sn.Prepare(ctx, "active", "")), errdefs.ErrAlreadyExists},
		{"Prepare of a committed name", second(e.sn.Prepare(ctx, "base", "")), errdefs.ErrAlreadyExists},
		{"View of an existing key", second(e.sn.View(ctx, "view", "base")), errdefs.ErrAlreadyExists},
		{"Prepare on a missing parent", second(e.sn.Prepare(ctx, "x", "missing")), errdefs.ErrNotFound},
		{"Prepare on an active parent", second(e.sn.Prepare(ctx, "x", "active")), errdefs.ErrFailedPrecondition},
		{"View on a view", second(e.sn.View(ctx, "x", "view")), errdefs.ErrFailedPrecondition},
		{"Commit into an existing name", e.sn.Commit(ctx, "base", "active"), errdefs.ErrAlreadyExists},
		{"Commit of a view", e.sn.Commit(ctx, "c", "view"), errdefs.ErrFailedPrecondition},
		{"Commit of a committed snapshot", e.sn.Commit(ctx, "c", "base"), errdefs.ErrFailedPrecondition},
		{"Commit of a missing key", e.sn.Commit(ctx, "c", "missing"), errdefs.ErrNotFound},
		{"Stat of a missing key", second(e.sn.Stat(ctx, "missing")), errdefs.ErrNotFound},
		{"Mounts of a committed snapshot", second(e.sn.Mounts(ctx, "base")), errdefs.ErrFailedPrecondition},
		{"Mounts of a missing key", second(e.sn.Mounts(ctx, "missing")), errdefs.ErrNotFound},
		{"Usage of a missing key", second(e.sn.Usage(ctx, "missing")), errdefs.ErrNotFound},
		{"Update of a missing key", second(e.sn.Update(ctx, snapshots.Info{Name: "missing"})), errdefs.ErrNotFound},
		{"Remove of a missing key", e.sn.Remove(ctx, "missing"), errdefs.ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// Failed calls changed nothing.
	if got, want := keys(ctx, t, e.sn), []string{"active", "base", "view"}; !slices.Equal(got, want) {
		t.Fatalf("Walk after failed calls = %v, want %v", got, want)
	}
	if _, err := e.sn.Stat(ctx, "c"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stat(c) after failed commits = %v, want not found", err)
	}
	// The active snapshot still commits after the failed attempts.
	if err := e.sn.Commit(ctx, "c", "active"); err != nil {
		t.Fatal(err)
	}
}

func second[T any](_ T, err error) error { return err }

func testRemoveWithChildren(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "l1", "k1", "", nil)
	e.layer(ctx, t, "l2", "k2", "l1", nil)
	if _, err := e.sn.Prepare(ctx, "child", "l2"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Remove(l1) with a committed child", e.sn.Remove(ctx, "l1"), errdefs.ErrFailedPrecondition)
	wantErr(t, "Remove(l2) with an active child", e.sn.Remove(ctx, "l2"), errdefs.ErrFailedPrecondition)
	if err := e.sn.Remove(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Remove(ctx, "l2"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Remove(ctx, "l1"); err != nil {
		t.Fatal(err)
	}
}

func testLabels(ctx context.Context, t *testing.T, e *env) {
	if _, err := e.sn.Prepare(ctx, "a", "", snapshots.WithLabels(map[string]string{"x": "1", "y": "2"})); err != nil {
		t.Fatal(err)
	}
	before, err := e.sn.Stat(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	for _, tc := range []struct {
		name       string
		labels     map[string]string
		fieldpaths []string
		want       map[string]string
	}{
		{"set one", map[string]string{"x": "10", "y": "ignored"}, []string{"labels.x"}, map[string]string{"x": "10", "y": "2"}},
		{"add one", map[string]string{"z": "3"}, []string{"labels.z"}, map[string]string{"x": "10", "y": "2", "z": "3"}},
		{"remove one", nil, []string{"labels.y"}, map[string]string{"x": "10", "z": "3"}},
		{"replace all", map[string]string{"only": "1"}, []string{"labels"}, map[string]string{"only": "1"}},
		{"no field paths replace all", map[string]string{"a": "b"}, nil, map[string]string{"a": "b"}},
		{"dotted key", map[string]string{"containerd.io/gc.root": "1"}, []string{"labels.containerd.io/gc.root"}, map[string]string{"a": "b", "containerd.io/gc.root": "1"}},
	} {
		got, err := e.sn.Update(ctx, snapshots.Info{Name: "a", Labels: tc.labels}, tc.fieldpaths...)
		if err != nil {
			t.Fatalf("%s: Update = %v", tc.name, err)
		}
		if !mapsEqual(got.Labels, tc.want) {
			t.Fatalf("%s: Update labels = %v, want %v", tc.name, got.Labels, tc.want)
		}
		if st, _ := e.sn.Stat(ctx, "a"); !mapsEqual(st.Labels, tc.want) {
			t.Fatalf("%s: Stat labels = %v, want %v", tc.name, st.Labels, tc.want)
		}
	}
	after, _ := e.sn.Stat(ctx, "a")
	if !after.Updated.After(before.Updated) || !after.Created.Equal(before.Created) {
		t.Fatalf("times after Update: created %v→%v, updated %v→%v", before.Created, after.Created, before.Updated, after.Updated)
	}
	_, err = e.sn.Update(ctx, snapshots.Info{Name: "a", Parent: "x"}, "parent")
	wantErr(t, "Update of field path parent", err, errdefs.ErrInvalidArgument)
	_, err = e.sn.Update(ctx, snapshots.Info{Name: "a", Labels: map[string]string{"k": strings.Repeat("v", 5000)}}, "labels.k")
	wantErr(t, "Update with a 5000-byte label", err, errdefs.ErrInvalidArgument)

	// Commit gives the committed snapshot the labels of its options.
	if err := e.sn.Commit(ctx, "c", "a", snapshots.WithLabels(map[string]string{"committed": "yes"})); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.sn.Stat(ctx, "c"); st.Labels["committed"] != "yes" {
		t.Fatalf("labels after Commit with labels = %v", st.Labels)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testWalk(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "base", "k", "", nil, snapshots.WithLabels(map[string]string{"env": "prod"}))
	e.layer(ctx, t, "other", "k2", "", nil)
	if _, err := e.sn.Prepare(ctx, "active", "base", snapshots.WithLabels(map[string]string{"env": "dev", "com.example/team": "infra"})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"active", "base", "other", "view"}},
		{[]string{"kind==committed"}, []string{"base", "other"}},
		{[]string{"kind==active"}, []string{"active"}},
		{[]string{"kind==view"}, []string{"view"}},
		{[]string{"parent==base"}, []string{"active", "view"}},
		{[]string{"parent"}, []string{"active", "view"}},
		{[]string{"name==other"}, []string{"other"}},
		{[]string{"name~=^(base|view)$"}, []string{"base", "view"}},
		{[]string{"labels.env==prod"}, []string{"base"}},
		{[]string{"labels.env"}, []string{"active", "base"}},
		{[]string{`labels."com.example/team"==infra`}, []string{"active"}},
		{[]string{"kind==active,parent==base"}, []string{"active"}},
		{[]string{"kind==active,parent==other"}, nil},
		{[]string{"kind==view", "name==other"}, []string{"other", "view"}},
	} {
		if got := keys(ctx, t, e.sn, tc.filters...); !slices.Equal(got, tc.want) {
			t.Errorf("Walk(%q) = %v, want %v", tc.filters, got, tc.want)
		}
	}
	err := e.sn.Walk(ctx, func(context.Context, snapshots.Info) error { return nil }, "kind==")
	wantErr(t, "Walk with a bad filter", err, errdefs.ErrInvalidArgument)
	stop := errors.New("stop")
	n := 0
	err = e.sn.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk with a failing fn = %v after %d calls, want its error after 1", err, n)
	}
	// fn may use the snapshotter.
	err = e.sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		_, err := e.sn.Stat(ctx, info.Name)
		return err
	})
	if err != nil {
		t.Fatalf("Stat inside Walk = %v", err)
	}
}

func testUsage(ctx context.Context, t *testing.T, e *env) {
	mounts, err := e.sn.Prepare(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := e.sn.Usage(ctx, "a"); err != nil || u.Size != 0 || u.Inodes != 1 {
		t.Fatalf("Usage of an empty active snapshot = %+v, %v; want 0 bytes, 1 inode", u, err)
	}
	root, unmount := e.mount(t, mounts)
	writeFile(t, filepath.Join(root, "d", "file"), make([]byte, 12345))
	writeFile(t, filepath.Join(root, "small"), []byte("abc"))
	if err := os.Link(filepath.Join(root, "d", "file"), filepath.Join(root, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small", filepath.Join(root, "symlink")); err != nil {
		t.Fatal(err)
	}
	unmount()
	// root, d, d/file (= hardlink), small, symlink.
	want := snapshots.Usage{Size: 12345 + 3, Inodes: 5}
	if u, err := e.sn.Usage(ctx, "a"); err != nil || u != want {
		t.Fatalf("Usage(active) = %+v, %v; want %+v", u, err, want)
	}
	if err := e.sn.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	if u, err := e.sn.Usage(ctx, "c"); err != nil || u != want {
		t.Fatalf("Usage(committed) = %+v, %v; want %+v", u, err, want)
	}
	// A child's usage counts at least what it wrote itself.
	mounts, err = e.sn.Prepare(ctx, "child", "c")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount = e.mount(t, mounts)
	writeFile(t, filepath.Join(root, "more"), make([]byte, 1000))
	unmount()
	if u, err := e.sn.Usage(ctx, "child"); err != nil || u.Size < 1000 || u.Inodes < 2 {
		t.Fatalf("Usage(child) = %+v, %v; want at least 1000 bytes, 2 inodes", u, err)
	}
}

func testViews(ctx context.Context, t *testing.T, e *env) {
	// A view without a parent is an empty read-only tree.
	mounts, err := e.sn.View(ctx, "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount := e.mount(t, mounts)
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Fatalf("empty view: %v, %v", entries, err)
	}
	if err := os.WriteFile(filepath.Join(root, "w"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write into an empty view = %v, want EROFS", err)
	}
	unmount()
	// Views of one and of three layers.
	e.layer(ctx, t, "l1", "k1", "", func(r string) { writeFile(t, filepath.Join(r, "one"), []byte("1")) })
	e.layer(ctx, t, "l2", "k2", "l1", func(r string) { writeFile(t, filepath.Join(r, "two"), []byte("2")) })
	e.layer(ctx, t, "l3", "k3", "l2", func(r string) { writeFile(t, filepath.Join(r, "one"), []byte("3")) })
	for _, tc := range []struct {
		parent string
		want   map[string]string
	}{
		{"l1", map[string]string{"one": "1"}},
		{"l3", map[string]string{"one": "3", "two": "2"}},
	} {
		mounts, err := e.sn.View(ctx, "view-"+tc.parent, tc.parent)
		if err != nil {
			t.Fatal(err)
		}
		root, unmount := e.mount(t, mounts)
		for name, want := range tc.want {
			wantContent(t, filepath.Join(root, name), want)
		}
		if err := os.WriteFile(filepath.Join(root, "one"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Fatalf("write into view of %s = %v, want EROFS", tc.parent, err)
		}
		unmount()
		if info, err := e.sn.Stat(ctx, "view-"+tc.parent); err != nil || info.Kind != snapshots.KindView || info.Parent != tc.parent {
			t.Fatalf("Stat(view-%s) = %+v, %v", tc.parent, info, err)
		}
	}
}

func testCleanup(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "base", "k", "", func(r string) { writeFile(t, filepath.Join(r, "f"), []byte("kept")) })
	if _, err := e.sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sn.Prepare(ctx, "removed", "base"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Remove(ctx, "removed"); err != nil {
		t.Fatal(err)
	}
	if err := e.sn.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup = %v", err)
	}
	if got, want := keys(ctx, t, e.sn), []string{"active", "base"}; !slices.Equal(got, want) {
		t.Fatalf("Walk after Cleanup = %v, want %v", got, want)
	}
	root, unmount := e.mount(t, mustMounts(ctx, t, e.sn, "active"))
	wantContent(t, filepath.Join(root, "f"), "kept")
	unmount()
}

// testChain128 commits 128 layers, each with a file of its own and a
// version of one shared file, and mounts the stack: deeper than a page of
// overlay options with absolute paths.
func testChain128(ctx context.Context, t *testing.T, e *env) {
	const depth = 128
	parent := ""
	for i := 1; i <= depth; i++ {
		name := fmt.Sprintf("sha256:%064d", i) // chain IDs are this long
		e.layer(ctx, t, name, fmt.Sprintf("extract-%d", i), parent, func(r string) {
			writeFile(t, filepath.Join(r, fmt.Sprintf("layer-%03d", i)), []byte(fmt.Sprint(i)))
			writeFile(t, filepath.Join(r, "top"), []byte(fmt.Sprint(i)))
		})
		parent = name
	}
	check := func(root string) {
		t.Helper()
		for _, i := range []int{1, 2, 64, 127, 128} {
			wantContent(t, filepath.Join(root, fmt.Sprintf("layer-%03d", i)), fmt.Sprint(i))
		}
		entries, err := os.ReadDir(root)
		if err != nil || len(entries) != depth+1 {
			t.Fatalf("%d entries in the stack's root (%v), want %d", len(entries), err, depth+1)
		}
		wantContent(t, filepath.Join(root, "top"), fmt.Sprint(depth))
	}
	mounts, err := e.sn.Prepare(ctx, "rootfs", parent)
	if err != nil {
		t.Fatal(err)
	}
	root, unmount := e.mount(t, mounts)
	check(root)
	writeFile(t, filepath.Join(root, "top"), []byte("container"))
	unmount()
	mounts, err = e.sn.View(ctx, "view", parent)
	if err != nil {
		t.Fatal(err)
	}
	root, unmount = e.mount(t, mounts)
	check(root)
	unmount()
}

func testClose(ctx context.Context, t *testing.T, e *env) {
	if _, err := e.sn.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	e.closed = true
	if err := e.sn.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	// Calls after Close may fail (a driver's database is closed) or not
	// (the metadata wrapper does not own its backend); they must not
	// panic or hang.
	_, _ = e.sn.Stat(ctx, "a")
}

// testRebase commits a snapshot prepared without a parent onto a committed
// one (snapshots.WithParent). Snapshotters that cannot must say so with
// errdefs.ErrNotImplemented and leave the active snapshot as it was.
func testRebase(ctx context.Context, t *testing.T, e *env) {
	e.layer(ctx, t, "lower", "extract-lower", "", func(root string) {
		writeFile(t, filepath.Join(root, "a"), []byte("lower"))
		writeFile(t, filepath.Join(root, "both"), []byte("lower"))
	})
	mounts, err := e.sn.Prepare(ctx, "extract-upper", "")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount := e.mount(t, mounts)
	writeFile(t, filepath.Join(root, "b"), []byte("upper"))
	writeFile(t, filepath.Join(root, "both"), []byte("upper"))
	unmount()
	err = e.sn.Commit(ctx, "upper", "extract-upper", snapshots.WithParent("nope"))
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		wantErr(t, "Commit on a missing parent", err, errdefs.ErrNotFound)
		err = e.sn.Commit(ctx, "upper", "extract-upper", snapshots.WithParent("lower"))
	}
	if errors.Is(err, errdefs.ErrNotImplemented) {
		info, err := e.sn.Stat(ctx, "extract-upper")
		if err != nil || info.Kind != snapshots.KindActive {
			t.Fatalf("after a refused rebase Stat(extract-upper) = %+v, %v; want it still active", info, err)
		}
		if _, err := e.sn.Stat(ctx, "upper"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("a refused rebase left %q: %v", "upper", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Commit(upper, WithParent(lower)) = %v", err)
	}
	info, err := e.sn.Stat(ctx, "upper")
	if err != nil || info.Parent != "lower" || info.Kind != snapshots.KindCommitted {
		t.Fatalf("Stat(upper) = %+v, %v; want committed on lower", info, err)
	}
	wantErr(t, "Remove of a rebased parent", e.sn.Remove(ctx, "lower"), errdefs.ErrFailedPrecondition)
	mounts, err = e.sn.View(ctx, "view", "upper")
	if err != nil {
		t.Fatal(err)
	}
	root, unmount = e.mount(t, mounts)
	wantContent(t, filepath.Join(root, "a"), "lower")
	wantContent(t, filepath.Join(root, "b"), "upper")
	wantContent(t, filepath.Join(root, "both"), "upper")
	unmount()
	// An active snapshot prepared on a parent cannot move to another.
	e.layer(ctx, t, "other", "extract-other", "", nil)
	if _, err := e.sn.Prepare(ctx, "extract-3", "lower"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Commit onto another parent", e.sn.Commit(ctx, "x", "extract-3", snapshots.WithParent("other")), errdefs.ErrInvalidArgument)
}
