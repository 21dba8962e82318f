package overlay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/mount"

	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/snapshottest"
)

func TestOverlay(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T, root string) snapshots.Snapshotter {
		sn, err := New(root)
		if err != nil {
			t.Fatal(err)
		}
		return sn
	})
}

// TestMountShapes checks the mounts of each kind against the table in the
// package documentation.
func TestMountShapes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	sn, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	fs := func(key string) string {
		s, err := sn.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return sn.FS(s.ID)
	}
	if _, err := sn.Prepare(ctx, "k1", ""); err != nil {
		t.Fatal(err)
	}
	l1 := fs("k1")
	if err := sn.Commit(ctx, "l1", "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "k2", "l1"); err != nil {
		t.Fatal(err)
	}
	l2 := fs("k2")
	if err := sn.Commit(ctx, "l2", "k2"); err != nil {
		t.Fatal(err)
	}
	base := strings.Join(sn.options, ",")
	for _, tc := range []struct {
		name    string
		prepare func() ([]mount.Mount, error)
		key     string
		want    func() string
	}{
		{"active base", func() ([]mount.Mount, error) { return sn.Prepare(ctx, "a0", "") }, "a0",
			func() string { return "bind " + fs("a0") + " rw,rbind" }},
		{"active on two", func() ([]mount.Mount, error) { return sn.Prepare(ctx, "a2", "l2") }, "a2",
			func() string {
				return "overlay overlay " + strings.TrimPrefix(base+",workdir="+filepath.Join(filepath.Dir(fs("a2")), "work")+",upperdir="+fs("a2")+",lowerdir="+l2+":"+l1, ",")
			}},
		{"view of one", func() ([]mount.Mount, error) { return sn.View(ctx, "v1", "l1") }, "v1",
			func() string { return "bind " + l1 + " ro,rbind" }},
		{"view of two", func() ([]mount.Mount, error) { return sn.View(ctx, "v2", "l2") }, "v2",
			func() string { return "overlay overlay " + strings.TrimPrefix(base+",ro,lowerdir="+l2+":"+l1, ",") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := tc.prepare()
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 {
				t.Fatalf("mounts = %v, want one", ms)
			}
			got := ms[0].Type + " " + ms[0].Source + " " + strings.Join(ms[0].Options, ",")
			if want := tc.want(); got != want {
				t.Errorf("mounts = %s\nwant     %s", got, want)
			}
		})
	}
}

func TestSupportedOnOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	opts, err := Supported(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overlay options here: %q", opts)
	// A root on overlayfs cannot hold upper directories: New says so.
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + filepath.Join(dir, "l"), "upperdir=" + filepath.Join(dir, "u"), "workdir=" + filepath.Join(dir, "w")}}
	if err := m.Mount(filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(filepath.Join(dir, "m"), 0)
	_, err = New(filepath.Join(dir, "m", "root"))
	if err == nil || !strings.Contains(err.Error(), "overlayfs unavailable") || !strings.Contains(err.Error(), "native") {
		t.Fatalf("New on overlayfs = %v, want an error saying overlayfs is unavailable and what to use", err)
	}
}
