package volumes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/mount"
)

func newStore(t *testing.T, used map[string][]string) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "volumes"), WithInUse(func(context.Context) (map[string][]string, error) {
		return used, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	used := map[string][]string{}
	s := newStore(t, used)
	v, err := s.Create(ctx, CreateRequest{Name: "data", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != filepath.Join(s.Root(), "data", "_data") || !v.CopyUp {
		t.Fatalf("Create = %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "data"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Create twice = %v, want ErrAlreadyExists", err)
	}
	anon, err := s.Create(ctx, CreateRequest{Anonymous: true})
	if err != nil || len(anon.Name) != 64 {
		t.Fatalf("Create anonymous = %+v, %v", anon, err)
	}
	got, err := s.Get(ctx, "data")
	if err != nil || got.Labels["a"] != "b" || got.Name != "data" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	used["data"] = []string{"0123456789abcdef0123"}
	if err := s.Remove(ctx, "data"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove(in use) = %v, want ErrFailedPrecondition", err)
	}
	// Prune: anonymous only by default, in-use never.
	removed, err := s.Prune(ctx, PruneOptions{})
	if err != nil || !slices.Equal(removed, []string{anon.Name}) {
		t.Fatalf("Prune = %v, %v; want [%s]", removed, err, anon.Name)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	removed, err = s.Prune(ctx, PruneOptions{All: true})
	if err != nil || !slices.Equal(removed, []string{"other"}) {
		t.Fatalf("Prune(all) = %v, %v; want [other]", removed, err)
	}
	delete(used, "data")
	if err := s.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data left after Remove: %v", err)
	}
	if err := s.Remove(ctx, "data"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Remove(gone) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "data"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get(gone) = %v, want ErrNotFound", err)
	}
}

func TestNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	for _, name := range []string{"a", "-x", ".x", "a/b", "..", "a b", "x:y", "x\x00", strings.Repeat("a", 256)} {
		if _, err := s.Create(ctx, CreateRequest{Name: name}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	entries, _ := os.ReadDir(s.Root())
	for _, e := range entries {
		if e.Name() != "lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	for _, name := range []string{"ab", "a.b_c-d", "A9"} {
		if _, err := s.Create(ctx, CreateRequest{Name: name}); err != nil {
			t.Errorf("Create(%q) = %v", name, err)
		}
	}
}

// A directory a crash left without its record is not listed, and a
// Create of its name starts afresh.
func TestHalfMade(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	if err := os.MkdirAll(filepath.Join(s.Root(), "half", "_data"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Root(), "half", "_data", "old"), nil, 0o644)
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v; want none", list, err)
	}
	v, err := s.Create(ctx, CreateRequest{Name: "half"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old data kept: %v", err)
	}
}

func TestParseVolumeSpec(t *testing.T) {
	for _, tc := range []struct {
		name, spec                  string
		wantName, wantDst, wantMode string
		wantNoCopy                  bool
		wantErr                     bool
	}{
		{name: "named", spec: "data:/var/lib", wantName: "data", wantDst: "/var/lib", wantMode: "rw"},
		{name: "ro", spec: "data:/var/lib/:ro", wantName: "data", wantDst: "/var/lib", wantMode: "ro"},
		{name: "nocopy", spec: "data:/x:nocopy,rw", wantName: "data", wantDst: "/x", wantMode: "rw", wantNoCopy: true},
		{name: "anonymous", spec: "/x", wantDst: "/x", wantMode: "rw"},
		{name: "anonymous ro", spec: "/x:ro", wantDst: "/x", wantMode: "ro"},
		{name: "relative dst", spec: "data:x", wantErr: true},
		{name: "root dst", spec: "data:/", wantErr: true},
		{name: "bad name", spec: "-d:/x", wantErr: true},
		{name: "bad option", spec: "data:/x:rx", wantErr: true},
		{name: "two modes", spec: "data:/x:ro,rw", wantErr: true},
		{name: "too many", spec: "a:/b:ro:rw", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, dst, mode, nocopy, err := parseVolumeSpec(tc.spec)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("parseVolumeSpec(%q) = %v, want ErrInvalidArgument", tc.spec, err)
				}
				return
			}
			if err != nil || name != tc.wantName || dst != tc.wantDst || mode != tc.wantMode || nocopy != tc.wantNoCopy {
				t.Fatalf("parseVolumeSpec(%q) = %q, %q, %q, %v, %v", tc.spec, name, dst, mode, nocopy, err)
			}
		})
	}
	for spec, want := range map[string]bool{"data:/x": true, "/x": true, "/src:/x": false, "./src:/x": false, "/x:ro": false} {
		if got := IsVolume(spec); got != want {
			t.Errorf("IsVolume(%q) = %v, want %v", spec, got, want)
		}
	}
}

func TestBindMissingAndNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	if _, err := s.Bind(ctx, "nope:/x", "", BindOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Bind(missing) = %v, want ErrNotFound", err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("Bind(missing) made %v", list)
	}
	m, err := s.Bind(ctx, "made:/x:ro", "", BindOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	want := specs.Mount{Destination: "/x", Type: "bind", Source: filepath.Join(s.Root(), "made", "_data"), Options: []string{"rbind", "ro", "rprivate"}}
	if m.Destination != want.Destination || m.Source != want.Source || !slices.Equal(m.Options, want.Options) {
		t.Fatalf("Bind = %+v, want %+v", m, want)
	}
	got := s.Names([]specs.Mount{m, {Source: "/etc/hosts"}, {Source: filepath.Join(s.Root(), "made")}})
	if !slices.Equal(got, []string{"made"}) {
		t.Fatalf("Names = %v, want [made]", got)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the copy sets owners and makes device nodes")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBindCopyUp fills a new volume from the image's tree, with owners,
// modes, xattrs, symlinks, hard links and nodes, once.
func TestBindCopyUp(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, nil)
	rootfs := t.TempDir()
	src := filepath.Join(rootfs, "srv", "data")
	must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "sub", "file"), []byte("hello"), 0o640))
	must(t, os.Chown(filepath.Join(src, "sub", "file"), 1234, 5678))
	must(t, unix.Chmod(filepath.Join(src, "sub"), 0o2751))
	must(t, os.Chown(filepath.Join(src, "sub"), 42, 43))
	must(t, unix.Chmod(src, 0o1777))
	must(t, os.Chown(src, 7, 8))
	must(t, os.Link(filepath.Join(src, "sub", "file"), filepath.Join(src, "hardlink")))
	must(t, os.Symlink("../../../etc/passwd", filepath.Join(src, "rel-link")))
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(t, unix.Chmod(filepath.Join(src, "fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Setxattr(filepath.Join(src, "sub", "file"), "user.strata", []byte("kept"), 0))
	must(t, os.MkdirAll(filepath.Join(src, "ro-dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "ro-dir", "f"), []byte("x"), 0o444))
	must(t, os.Chmod(filepath.Join(src, "ro-dir"), 0o555))

	m, err := s.Bind(ctx, "data:/srv/data", rootfs, BindOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	dst := m.Source
	check := func(rel string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, rel), &st); err != nil {
			t.Errorf("lstat %s: %v", rel, err)
			return
		}
		if os.FileMode(st.Mode&0o7777) != mode&0o7777 && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("%s: mode %o, want %o", rel, st.Mode&0o7777, mode&0o7777)
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
		}
	}
	check(".", 0o1777, 7, 8)
	check("sub", 0o2751, 42, 43)
	check("sub/file", 0o640, 1234, 5678)
	check("fifo", 0o620, 0, 0)
	check("ro-dir", 0o555, 0, 0)
	check("ro-dir/f", 0o444, 0, 0)
	if b, err := os.ReadFile(filepath.Join(dst, "sub", "file")); err != nil || string(b) != "hello" {
		t.Errorf("sub/file = %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "rel-link")); err != nil || target != "../../../etc/passwd" {
		t.Errorf("rel-link → %q, %v", target, err)
	}
	val := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(dst, "sub", "file"), "user.strata", val); err != nil || string(val[:n]) != "kept" {
		t.Errorf("xattr user.strata = %q, %v", val[:max(n, 0)], err)
	}
	var a, b unix.Stat_t
	must(t, unix.Stat(filepath.Join(dst, "sub", "file"), &a))
	must(t, unix.Stat(filepath.Join(dst, "hardlink"), &b))
	if a.Ino != b.Ino {
		t.Errorf("hardlink is a copy, not a link")
	}
	var null unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dst, "null"), &null))
	if null.Mode&unix.S_IFMT != unix.S_IFCHR || null.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("null: mode %o rdev %d", null.Mode, null.Rdev)
	}

	// Once only: a second container sees what the first left.
	must(t, os.Remove(filepath.Join(dst, "hardlink")))
	if _, err := s.Bind(ctx, "data:/srv/data", rootfs, BindOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "hardlink")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Bind copied again: %v", err)
	}
	// nocopy and a missing path leave the volume empty.
	for _, spec := range []string{"empty1:/srv/data:nocopy", "empty2:/not/there"} {
		m, err := s.Bind(ctx, spec, rootfs, BindOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(m.Source); len(entries) != 0 {
			t.Errorf("Bind(%q) copied %d entries", spec, len(entries))
		}
	}
}

// TestBindCopyUpHostile: an image's symlinks never make the copy read or
// write outside the image's root and the volume.
func TestBindCopyUpHostile(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, nil)
	top := t.TempDir()
	outside := filepath.Join(top, "outside")
	must(t, os.MkdirAll(outside, 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600))
	rootfs := filepath.Join(top, "rootfs")
	must(t, os.MkdirAll(filepath.Join(rootfs, "data"), 0o755))
	// The mount point itself a symlink climbing out: resolved in the root.
	must(t, os.Symlink("../../outside", filepath.Join(rootfs, "escape")))
	must(t, os.Symlink(outside, filepath.Join(rootfs, "abs-escape")))
	// Inside the tree: symlinks to outside, as files and as directories.
	must(t, os.Symlink(outside, filepath.Join(rootfs, "data", "dir-link")))
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(rootfs, "data", "file-link")))

	for _, dst := range []string{"/escape", "/abs-escape"} {
		m, err := s.Bind(ctx, "v"+filepath.Base(dst)+":"+dst, rootfs, BindOptions{Create: true})
		if err != nil {
			t.Fatalf("Bind(%s): %v", dst, err)
		}
		if entries, _ := os.ReadDir(m.Source); len(entries) != 0 {
			t.Errorf("Bind(%s) copied %d entries from outside the root", dst, len(entries))
		}
	}
	m, err := s.Bind(ctx, "vdata:/data", rootfs, BindOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dir-link", "file-link"} {
		fi, err := os.Lstat(filepath.Join(m.Source, name))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: %v, %v; want a symlink", name, fi, err)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside changed: %d entries", len(entries))
	}
}

// TestBindAll: every argument checked before anything is made; the
// image's root filesystem (a real overlay of two layers, as a snapshot's
// mounts give it) mounted only for the copy, read-only, and unmounted.
func TestBindAll(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t, nil)
	top := t.TempDir()
	lower1, lower2 := filepath.Join(top, "l1"), filepath.Join(top, "l2")
	must(t, os.MkdirAll(filepath.Join(lower1, "data"), 0o755))
	must(t, os.MkdirAll(filepath.Join(lower2, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(lower1, "data", "base"), []byte("1"), 0o644))
	must(t, os.WriteFile(filepath.Join(lower2, "data", "top"), []byte("2"), 0o644))
	rootfs := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + lower2 + ":" + lower1}}}
	// BindAll's temporary mounts go to a directory of this test's own, so
	// that the check below sees only them, not those of tests of other
	// packages running meanwhile.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	if _, err := s.BindAll(ctx, []string{"va:/data", "/anon", "vb:relative"}, rootfs, BindOptions{Create: true}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("BindAll(bad third) = %v, want ErrInvalidArgument", err)
	}
	if _, err := s.BindAll(ctx, []string{"va:/data", "missing:/x"}, rootfs, BindOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("BindAll(missing, no create) = %v, want ErrNotFound", err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("a refused BindAll made %v", list)
	}
	ms, err := s.BindAll(ctx, []string{"va:/data", "/data:ro"}, rootfs, BindOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1].Options[1] != "ro" {
		t.Fatalf("BindAll = %+v", ms)
	}
	for _, m := range ms {
		for _, name := range []string{"base", "top"} {
			if _, err := os.Stat(filepath.Join(m.Source, name)); err != nil {
				t.Errorf("%s: %v", m.Source, err)
			}
		}
	}
	left, err := mount.Under(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		t.Errorf("temporary mount left: %s", l)
	}
}

// TestRemoveAnonymous: what rm -v and --rm remove of a container's
// mounts: its anonymous volumes that no other container uses; named
// volumes, host binds and volumes of other stores stay.
func TestRemoveAnonymous(t *testing.T) {
	ctx := context.Background()
	used := map[string][]string{}
	s := newStore(t, used)
	named, err := s.Create(ctx, CreateRequest{Name: "named"})
	if err != nil {
		t.Fatal(err)
	}
	var anon []Volume
	for range 3 {
		v, err := s.Create(ctx, CreateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		anon = append(anon, v)
	}
	// anon[2] is also another container's.
	used[anon[2].Name] = []string{"other"}
	mounts := []specs.Mount{
		{Destination: "/a", Type: "bind", Source: anon[0].Mountpoint},
		{Destination: "/n", Type: "bind", Source: named.Mountpoint},
		{Destination: "/s", Type: "bind", Source: anon[2].Mountpoint},
		{Destination: "/h", Type: "bind", Source: t.TempDir()},
		{Destination: "/proc", Type: "proc", Source: "proc"},
	}
	removed, err := s.RemoveAnonymous(ctx, mounts)
	if err != nil || !slices.Equal(removed, []string{anon[0].Name}) {
		t.Fatalf("RemoveAnonymous = %v, %v; want [%s]", removed, err, anon[0].Name)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list {
		names = append(names, v.Name)
	}
	want := []string{anon[1].Name, anon[2].Name, "named"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("volumes after RemoveAnonymous: %v, want %v", names, want)
	}
	// Again: nothing left to remove is no error.
	if removed, err := s.RemoveAnonymous(ctx, mounts); err != nil || len(removed) != 0 {
		t.Fatalf("RemoveAnonymous again = %v, %v", removed, err)
	}
}
