package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
)

// fullTree describes every entry under dir exactly: type, mode, owner,
// size, mtime, content hash, link target, device, xattrs and hard-link
// groups. The root directory itself is left out.
func fullTree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			line += fmt.Sprintf(" size=%d sha=%s mtime=%d", st.Size, hex.EncodeToString(sum[:8]), st.Mtim.Nano())
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " link=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d mtime=%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Mtim.Nano())
		case unix.S_IFDIR, unix.S_IFIFO:
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		xs, _ := listXattrs(p)
		var keys []string
		for k := range xs {
			keys = append(keys, k+"="+xs[k])
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			line += " xattrs=" + strings.Join(keys, ",")
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func baseLayer() []byte {
	return tartest.Tar(
		tartest.Dir("etc/"), tartest.File("etc/hosts", "127.0.0.1 localhost\n"), tartest.File("etc/motd", "hello"),
		tartest.Dir("var/"), tartest.Dir("var/lib/"), tartest.File("var/lib/state", "s"),
		tartest.Dir("olddir/"), tartest.File("olddir/x", "x"),
		tartest.Dir("becomes-file/"), tartest.File("becomes-file/y", "y"),
		tartest.File("becomes-dir", "z"),
		tartest.Symlink("link", "etc/hosts"),
		tartest.Entry{Name: "bin/tool", Body: "tool", Mode: 0o755, Xattrs: map[string]string{"user.a": "1"}},
		tartest.File("hard1", "shared"), tartest.Link("hard2", "hard1"),
	)
}

// mutate changes dir the ways a container does.
func mutate(t *testing.T, dir string) {
	t.Helper()
	at := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	must(os.WriteFile(j("etc/hosts"), []byte("127.0.0.1 localhost strata\n"), 0o644))
	must(os.Chtimes(j("etc/hosts"), at, at))
	must(os.Remove(j("etc/motd")))
	must(os.RemoveAll(j("olddir")))
	must(os.RemoveAll(j("becomes-file")))
	must(os.WriteFile(j("becomes-file"), []byte("now a file"), 0o600))
	must(os.Remove(j("becomes-dir")))
	must(os.MkdirAll(j("becomes-dir/sub"), 0o750))
	must(os.WriteFile(j("becomes-dir/sub/f"), []byte("deep"), 0o644))
	must(os.Chmod(j("bin/tool"), 0o4755))
	must(os.Lchown(j("var/lib/state"), 33, 33))
	must(unix.Lsetxattr(j("bin/tool"), "user.a", []byte("2"), 0))
	must(os.Remove(j("link")))
	must(os.Symlink("/etc/motd", j("link")))
	must(os.WriteFile(j("new"), []byte("brand new"), 0o644))
	must(os.Link(j("new"), j("new-hard")))
	must(unix.Mkfifo(j("var/fifo"), 0o600))
	must(unix.Mknod(j("var/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
}

// TestDiffRoundTrip: apply a base, change a copy, diff, apply the diff onto
// another copy of the base: the trees must be identical, and the diff ID
// must be the digest of the uncompressed stream.
func TestDiffRoundTrip(t *testing.T) {
	requireRoot(t)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			tmp := t.TempDir()
			lower, upper, again := filepath.Join(tmp, "lower"), filepath.Join(tmp, "upper"), filepath.Join(tmp, "again")
			for _, d := range []string{lower, upper, again} {
				os.Mkdir(d, 0o755)
				mustApply(t, d, baseLayer(), WhiteoutNative)
			}
			mutate(t, upper)
			var layer bytes.Buffer
			res, err := WriteDiff(context.Background(), &layer, lower, upper, c)
			if err != nil {
				t.Fatal(err)
			}
			rc, comp, err := DecompressStream(bytes.NewReader(layer.Bytes()))
			if err != nil || comp != c {
				t.Fatalf("diff stream compression %v (%v), want %v", comp, err, c)
			}
			plain, _ := readAllClose(rc)
			if res.DiffID != digest.FromBytes(plain) || res.Size != int64(len(plain)) {
				t.Fatalf("DiffID %s size %d; the stream has %s, %d bytes", res.DiffID, res.Size, digest.FromBytes(plain), len(plain))
			}
			applied := mustApply(t, again, layer.Bytes(), WhiteoutNative)
			if applied.DiffID != res.DiffID {
				t.Fatalf("apply computed diff ID %s, diff said %s", applied.DiffID, res.DiffID)
			}
			t.Logf("layer entries:\n%s", tarNames(t, plain))
			if got, want := fullTree(t, again), fullTree(t, upper); got != want {
				t.Fatalf("re-applied diff differs:\n%s", lineDiff(want, got))
			}
			// Unchanged entries are not in the layer.
			names := tarNames(t, plain)
			if strings.Contains(names, "hard1") || !strings.Contains(names, "etc/.wh.motd") || !strings.Contains(names, ".wh.olddir") {
				t.Fatalf("layer entries:\n%s", names)
			}
		})
	}
}

// TestOverlayDiffRoundTrip changes a real overlay mount, writes the layer
// from its upper directory, and checks that the layer applied onto the same
// lower gives the same merged tree.
func TestOverlayDiffRoundTrip(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	dirs := map[string]string{}
	for _, d := range []string{"lower", "upper", "work", "merged", "upper2", "work2", "merged2"} {
		dirs[d] = filepath.Join(tmp, d)
		os.Mkdir(dirs[d], 0o755)
	}
	mustApply(t, dirs["lower"], baseLayer(), WhiteoutOverlay)
	mountOverlay := func(upper, work, target string) {
		t.Helper()
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off", dirs["lower"], upper, work)
		if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	}
	mountOverlay(dirs["upper"], dirs["work"], dirs["merged"])
	mutate(t, dirs["merged"])
	// An opaque directory: replace a lower directory by a new one.
	os.RemoveAll(filepath.Join(dirs["merged"], "var/lib"))
	os.MkdirAll(filepath.Join(dirs["merged"], "var/lib"), 0o755)
	os.WriteFile(filepath.Join(dirs["merged"], "var/lib/fresh"), []byte("f"), 0o644)
	want := fullTree(t, dirs["merged"])
	if err := unix.Unmount(dirs["merged"], 0); err != nil {
		t.Fatal(err)
	}

	var layer bytes.Buffer
	res, err := WriteOverlayDiff(context.Background(), &layer, dirs["upper"], Gzip, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := mustApply(t, dirs["upper2"], layer.Bytes(), WhiteoutOverlay); got.DiffID != res.DiffID {
		t.Fatalf("apply diff ID %s, diff said %s", got.DiffID, res.DiffID)
	}
	mountOverlay(dirs["upper2"], dirs["work2"], dirs["merged2"])
	if got := fullTree(t, dirs["merged2"]); got != want {
		t.Fatalf("overlay round trip differs:\n%s", lineDiff(want, got))
	}
}

func readAllClose(rc interface {
	Read([]byte) (int, error)
	Close() error
}) ([]byte, error) {
	defer rc.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(rc)
	return b.Bytes(), err
}

func tarNames(t *testing.T, b []byte) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return strings.Join(names, "\n")
}

func lineDiff(want, got string) string {
	w := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var out []string
	for l := range w {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range g {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
