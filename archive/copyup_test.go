package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
)

// TestApplyHardLinkToLowerLayer: a layer hard-links names that only a
// lower layer has (issue 11, item 11). Natively the target is in the tree;
// on overlay it is copied up into the layer's directory first, so that
// the mounted stack matches the native tree and both names share an inode
// in the upper directory.
func TestApplyHardLinkToLowerLayer(t *testing.T) {
	requireRoot(t)
	lower := tartest.Tar(
		tartest.Entry{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, UID: 7, GID: 8},
		tartest.Entry{Name: "etc/passwd", Body: "root:x:0:0\n", Mode: 0o4750, UID: 1, GID: 2,
			Xattrs: map[string]string{"user.k": "v", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		tartest.Entry{Name: "usr/lib/libc.so", Body: strings.Repeat("elf", 100000), Mode: 0o755},
		tartest.Symlink("bin/sh", "busybox"),
		tartest.Entry{Name: "run/p", Type: tar.TypeFifo, Mode: 0o640, UID: 3},
		tartest.Entry{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		tartest.File("gone/f", "gone"),
		tartest.File("opt/v", "v1"),
	)
	upper := tartest.Tar(
		tartest.Link("etc/passwd-hard", "etc/passwd"),
		tartest.Link("lib2/libc-link", "usr/lib/libc.so"),
		tartest.Link("bin/sh2", "bin/sh"),
		tartest.Link("run/p2", "run/p"),
		tartest.Link("dev/null2", "dev/null"),
		tartest.Dir("usr/"), // a directory the layer lists, where the copy goes
		tartest.Link("usr/lib/again", "usr/lib/libc.so"),
		tartest.File("etc/.wh.passwd", ""), // hides the lower name, not the link
		tartest.Link("opt/v-old", "opt/v"),
		tartest.File("opt/v", "v2"),  // replaces the lower name, not the link
		tartest.Link("d/x", "opt/v"), // its directory is replaced below
		tartest.File("d", "now a file"),
		tartest.Link("b", "usr/lib/libc.so"), // a link to a link,
		tartest.Link("c", "b"),
		tartest.File("b", "b replaced"), // whose name is replaced
	)

	native := t.TempDir()
	mustApply(t, native, lower, WhiteoutNative)
	mustApply(t, native, upper, WhiteoutNative)
	want := comparable(fullTree(t, native))

	// Parents known at apply time (the diff service), or not yet (a
	// parallel pull on overlay): then the links are deferred and made
	// by LinkLowers once the parent exists.
	for _, deferred := range []bool{false, true} {
		t.Run(fmt.Sprintf("deferred=%v", deferred), func(t *testing.T) {
			tmp := t.TempDir()
			l1, l2, merged := filepath.Join(tmp, "l1"), filepath.Join(tmp, "l2"), filepath.Join(tmp, "merged")
			for _, d := range []string{l1, l2, merged} {
				os.Mkdir(d, 0o755)
			}
			mustApply(t, l1, lower, WhiteoutOverlay)
			opts := ApplyOptions{Whiteouts: WhiteoutOverlay, Parents: []string{l1}}
			if deferred {
				opts = ApplyOptions{Whiteouts: WhiteoutOverlay, DeferLowerLinks: true}
			}
			res, err := Apply(context.Background(), l2, bytes.NewReader(upper), opts)
			if err != nil {
				t.Fatalf("Apply(upper layer hard-linking lower files, overlay) = %v", err)
			}
			if deferred {
				if len(res.LowerLinks) != 8 {
					t.Errorf("LowerLinks = %q, want the 8 links (c resolved to what b linked)", res.LowerLinks)
				}
				if err := LinkLowers(l2, res.LowerLinks, []string{l1}, ""); err != nil {
					t.Fatalf("LinkLowers = %v", err)
				}
				if err := PruneWhiteouts(l2, res.Whiteouts, []string{l1}, ""); err != nil {
					t.Fatal(err)
				}
			}
			if err := InheritDirs(l2, res.ImplicitDirs, []string{l1}, ""); err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]string{{"lib2/libc-link", "usr/lib/libc.so"}, {"usr/lib/again", "usr/lib/libc.so"}, {"bin/sh2", "bin/sh"}, {"run/p2", "run/p"}, {"dev/null2", "dev/null"}} {
				a, b := lstat(t, filepath.Join(l2, pair[0])), lstat(t, filepath.Join(l2, pair[1]))
				if a.Ino != b.Ino || a.Nlink < 2 {
					t.Errorf("upper %s and %s: inodes %d and %d, nlink %d; want one inode", pair[0], pair[1], a.Ino, b.Ino, a.Nlink)
				}
			}
			// etc/passwd is whited out by the layer after the link: the
			// link holds the file alone, as natively.
			if a := lstat(t, filepath.Join(l2, "etc/passwd-hard")); a.Nlink != 1 {
				t.Errorf("upper etc/passwd-hard: nlink %d, want 1", a.Nlink)
			}
			if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, fmt.Sprintf("lowerdir=%s:%s", l2, l1)); err != nil {
				t.Fatalf("mount overlay: %v", err)
			}
			defer unix.Unmount(merged, unix.MNT_DETACH)
			if got := comparable(fullTree(t, merged)); got != want {
				t.Errorf("overlay differs from native:\n%s", lineDiff(want, got))
			}
		})
	}
	// A deferred link that a later entry replaces is not made.
	res, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tartest.Tar(tartest.Link("x", "etc/passwd"), tartest.File("x", "own"))),
		ApplyOptions{Whiteouts: WhiteoutOverlay, DeferLowerLinks: true})
	if err != nil || len(res.LowerLinks) != 0 {
		t.Errorf("Apply(link x, then file x) = %q, %v; want no deferred link", res.LowerLinks, err)
	}

	l1 := t.TempDir()
	mustApply(t, l1, lower, WhiteoutOverlay)

	// Without the parents, or with the target hidden in them, the target
	// is not there: an error, as natively.
	for name, tc := range map[string]struct {
		layer   []byte
		parents []string
	}{
		"no-parents": {tartest.Tar(tartest.Link("x", "etc/passwd")), nil},
		"missing":    {tartest.Tar(tartest.Link("x", "etc/nothing")), []string{l1}},
		"whited-out": {tartest.Tar(tartest.File("etc/.wh.passwd", ""), tartest.Link("x", "etc/passwd")), []string{l1}},
		"opaque":     {tartest.Tar(tartest.File("etc/.wh..wh..opq", ""), tartest.Link("x", "etc/passwd")), []string{l1}},
		"directory":  {tartest.Tar(tartest.Link("x", "etc")), []string{l1}},
	} {
		_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tc.layer), ApplyOptions{Whiteouts: WhiteoutOverlay, Parents: tc.parents})
		if err == nil {
			t.Errorf("Apply(%s) succeeded, want an error: the target is not in the layers", name)
		}
		t.Logf("Apply(%s) = %v", name, err)
	}
}
