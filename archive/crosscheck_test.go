package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
)

// referenceFlatten builds the tree of a layer stack with GNU tar and plain
// file operations, independently of this package: each layer is extracted
// into a staging directory, its whiteouts are carried out on the result and
// removed from the staging tree, and the staging tree is copied over.
func referenceFlatten(t *testing.T, layers [][]byte) string {
	t.Helper()
	tmp := t.TempDir()
	ref := filepath.Join(tmp, "ref")
	os.Mkdir(ref, 0o755)
	for i, l := range layers {
		stage := filepath.Join(tmp, fmt.Sprintf("stage%d", i))
		os.Mkdir(stage, 0o755)
		lf := filepath.Join(tmp, fmt.Sprintf("layer%d.tar", i))
		if err := os.WriteFile(lf, l, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", lf, "-C", stage)
		// Whiteouts apply to what lower layers made.
		var whiteouts []string
		filepath.Walk(stage, func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.HasPrefix(fi.Name(), ".wh.") {
				whiteouts = append(whiteouts, p)
			}
			return nil
		})
		for _, w := range whiteouts {
			rel, _ := filepath.Rel(stage, w)
			dir, name := filepath.Split(rel)
			if name == ".wh..wh..opq" {
				entries, _ := os.ReadDir(filepath.Join(ref, dir))
				for _, e := range entries {
					os.RemoveAll(filepath.Join(ref, dir, e.Name()))
				}
			} else {
				os.RemoveAll(filepath.Join(ref, dir, strings.TrimPrefix(name, ".wh.")))
			}
			os.Remove(w)
		}
		// Copy over: a directory merges into a directory, anything else
		// replaces what is there.
		filepath.Walk(stage, func(p string, fi os.FileInfo, err error) error {
			if err != nil || p == stage {
				return nil
			}
			rel, _ := filepath.Rel(stage, p)
			if old, err := os.Lstat(filepath.Join(ref, rel)); err == nil && !(old.IsDir() && fi.IsDir()) {
				os.RemoveAll(filepath.Join(ref, rel))
			}
			return nil
		})
		run(t, "sh", "-c", fmt.Sprintf("cd %s && tar --xattrs --xattrs-include='*' --numeric-owner -cf - . | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C %s", stage, ref))
	}
	return ref
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// comparable drops what the reference cannot be held to: directory mtimes
// (later layers touch them in both, in different orders).
func comparable(tree string) string {
	var out []string
	for _, l := range strings.Split(tree, "\n") {
		if strings.Contains(l, "mode=4") && strings.Contains(l, " mtime=") { // directories: S_IFDIR is 040000
			l = l[:strings.Index(l, " mtime=")] + afterMtime(l)
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func afterMtime(l string) string {
	i := strings.Index(l, " mtime=")
	rest := l[i+len(" mtime="):]
	if j := strings.Index(rest, " "); j >= 0 {
		return rest[j:]
	}
	return ""
}

func stackFixed() [][]byte {
	return [][]byte{
		tartest.Tar(
			tartest.Dir("etc/"), tartest.File("etc/hosts", "hosts"), tartest.File("etc/passwd", "root"),
			tartest.Entry{Name: "bin/", Type: tar.TypeDir, Mode: 0o755},
			tartest.Entry{Name: "bin/su", Body: "su", Mode: 0o4755, UID: 0, GID: 0},
			tartest.Entry{Name: "home/", Type: tar.TypeDir, Mode: 0o755},
			tartest.Entry{Name: "home/user/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			tartest.Entry{Name: "home/user/.profile", Body: "export X=1", UID: 1000, GID: 1000},
			tartest.Symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
			tartest.File("lib/a.so", "a"), tartest.Link("lib/a.so.1", "lib/a.so"),
			tartest.Entry{Name: "usr/bin/ping", Body: "ping", Mode: 0o755, Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "user.k": "v"}},
			tartest.Dir("opt/"), tartest.Dir("opt/app/"), tartest.File("opt/app/old1", "1"), tartest.File("opt/app/old2", "2"),
			tartest.Entry{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
			tartest.Entry{Name: "run/p", Type: tar.TypeFifo, Mode: 0o644},
		),
		tartest.Tar(
			tartest.File("etc/.wh.passwd", ""),
			tartest.File("etc/hosts", "hosts v2"),
			tartest.File("opt/app/.wh..wh..opq", ""),
			tartest.File("opt/app/new", "new"),
			tartest.File("home/.wh.user", ""),
			tartest.Symlink("lib/current", "a.so.1"),
		),
		tartest.Tar(
			tartest.Dir("home/user/"), tartest.File("home/user/again", "again"),
			tartest.File("etc/passwd", "root again"),
			tartest.File(".wh.run", ""),
			tartest.Entry{Name: "bin/su", Body: "su2", Mode: 0o755},
		),
	}
}

// stackRandom makes n layers from a seed: each a consistent tree (no
// entry below a non-directory) over names that become files, directories,
// symlinks or whiteouts from one layer to the next.
func stackRandom(seed int64, n int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	tops := []string{"a", "b", "c", "d"}
	kids := []string{"x", "y", "z"}
	file := func(p string, i int) tartest.Entry {
		return tartest.Entry{Name: p, Body: fmt.Sprintf("%d-%d", i, rng.Intn(1000)), Mode: int64(0o600 + rng.Intn(0o177)), UID: rng.Intn(3)}
	}
	var layers [][]byte
	for i := 0; i < n; i++ {
		var es []tartest.Entry
		for _, top := range tops {
			switch rng.Intn(6) {
			case 0: // untouched
			case 1:
				if i > 0 {
					es = append(es, tartest.File(".wh."+top, ""))
				}
			case 2:
				es = append(es, file(top, i))
			case 3:
				es = append(es, tartest.Symlink(top, "../"+tops[rng.Intn(len(tops))]))
			default:
				es = append(es, tartest.Entry{Name: top + "/", Type: tar.TypeDir, Mode: int64(0o700 + rng.Intn(0o77))})
				if i > 0 && rng.Intn(3) == 0 {
					es = append(es, tartest.File(top+"/.wh..wh..opq", ""))
				}
				for _, k := range kids {
					switch rng.Intn(4) {
					case 0:
					case 1:
						if i > 0 {
							es = append(es, tartest.File(top+"/.wh."+k, ""))
						}
					default:
						es = append(es, file(top+"/"+k, i))
					}
				}
			}
		}
		layers = append(layers, tartest.Tar(es...))
	}
	return layers
}

// TestCrossCheckGNUTar applies layer stacks natively and through a real
// overlay mount and compares each entry's type, mode, owner, size, content,
// link target, device and xattrs with what GNU tar plus whiteout processing
// produces.
func TestCrossCheckGNUTar(t *testing.T) {
	requireRoot(t)
	stacks := map[string][][]byte{"fixed": stackFixed()}
	for seed := int64(1); seed <= 40; seed++ {
		stacks[fmt.Sprintf("random-%d", seed)] = stackRandom(seed, 4)
	}
	for name, layers := range stacks {
		t.Run(name, func(t *testing.T) {
			want := comparable(fullTree(t, referenceFlatten(t, layers)))

			nativeDir := t.TempDir()
			for _, l := range layers {
				mustApply(t, nativeDir, l, WhiteoutNative)
			}
			if got := comparable(fullTree(t, nativeDir)); got != want {
				t.Errorf("native differs from GNU tar:\n%s", lineDiff(want, got))
			}

			// Overlay: half the stacks are applied in order with their
			// parents known, half as a parallel pull does, every layer on
			// its own and pruned once all are there.
			tmp := t.TempDir()
			parallel := strings.HasSuffix(name, "1") || strings.HasSuffix(name, "3") || strings.HasSuffix(name, "5") || strings.HasSuffix(name, "7") || strings.HasSuffix(name, "9")
			var lowers []string
			var results []ApplyResult
			for i, l := range layers {
				d := filepath.Join(tmp, fmt.Sprintf("l%d", i))
				os.Mkdir(d, 0o755)
				opts := ApplyOptions{Whiteouts: WhiteoutOverlay}
				if !parallel {
					opts.Parents = lowers
				}
				res, err := Apply(context.Background(), d, bytes.NewReader(l), opts)
				if err != nil {
					t.Fatal(err)
				}
				results = append(results, res)
				lowers = append([]string{d}, lowers...) // newest first
			}
			if parallel {
				for i := range layers {
					if err := PruneWhiteouts(lowers[len(layers)-1-i], results[i].Whiteouts, lowers[len(layers)-i:], ""); err != nil {
						t.Fatal(err)
					}
				}
			}
			merged := filepath.Join(tmp, "merged")
			os.Mkdir(merged, 0o755)
			opts := "lowerdir=" + strings.Join(lowers, ":")
			if len(lowers) == 1 {
				opts += ":" + lowers[0] // overlay needs two lowers without an upper
			}
			if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, opts); err != nil {
				t.Fatalf("mount overlay %s: %v", opts, err)
			}
			defer unix.Unmount(merged, unix.MNT_DETACH)
			if got := comparable(fullTree(t, merged)); got != want {
				t.Errorf("overlay differs from GNU tar:\n%s", lineDiff(want, got))
			}
		})
	}
}

// TestApplyDirReplacedBySymlink: a directory replaced by a symlink in the
// same layer, then written through (issue 11, item 10). GNU tar follows the
// symlink for the later entries; so do we, inside the root. A layer's entry
// replaces a non-empty directory as well, which GNU tar does with
// --recursive-unlink.
func TestApplyDirReplacedBySymlink(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		layer []byte
	}{
		{"issue", tartest.Tar(tartest.Dir("b/"), tartest.File("b/f", "b"), tartest.Dir("a/"), tartest.Symlink("a", "b"), tartest.File("a/f", "through a"))},
		{"new-name", tartest.Tar(tartest.Dir("b/"), tartest.Dir("a/"), tartest.Symlink("a", "b"), tartest.File("a/g", "g"))},
		{"nested", tartest.Tar(tartest.Dir("b/"), tartest.Dir("b/c/"), tartest.File("b/c/f", "b"), tartest.Dir("a/"), tartest.Dir("a/c/"),
			tartest.Symlink("a", "b"), tartest.File("a/c/f", "through a"), tartest.Dir("a/d/"), tartest.File("a/d/g", "g"))},
		{"deeper-target", tartest.Tar(tartest.Dir("x/"), tartest.Dir("x/y/"), tartest.Dir("a/"), tartest.File("a/old", "old"),
			tartest.Symlink("a", "x/y"), tartest.File("a/f", "f"), tartest.Link("a/h", "a/f"))},
		{"same-name", tartest.Tar(tartest.Dir("b/"), tartest.Dir("a/"), tartest.File("a/f", "first"), tartest.Symlink("a", "b"), tartest.File("a/f", "second"))},
		{"back-to-dir", tartest.Tar(tartest.Dir("b/"), tartest.Dir("a/"), tartest.Symlink("a", "b"), tartest.File("a/f", "f"), tartest.Dir("a/"), tartest.File("a/g", "g"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := t.TempDir()
			lf := filepath.Join(t.TempDir(), "layer.tar")
			if err := os.WriteFile(lf, tc.layer, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--recursive-unlink", "-xpf", lf, "-C", ref)
			want := comparable(fullTree(t, ref))
			for _, mode := range []WhiteoutMode{WhiteoutOverlay, WhiteoutNative} {
				dir := t.TempDir()
				if _, err := apply(t, dir, tc.layer, mode); err != nil {
					t.Fatalf("Apply(%s, mode %d) = %v", tc.name, mode, err)
				}
				if got := comparable(fullTree(t, dir)); got != want {
					t.Errorf("Apply(%s, mode %d) differs from GNU tar:\n%s", tc.name, mode, lineDiff(want, got))
				}
			}
		})
	}
	// An absolute symlink is followed inside the root, never out of it.
	dir := t.TempDir()
	mustApply(t, dir, tartest.Tar(tartest.Dir("b/"), tartest.Dir("a/"), tartest.Symlink("a", "/b"), tartest.File("a/f", "f")), WhiteoutNative)
	if b, err := os.ReadFile(filepath.Join(dir, "b/f")); err != nil || string(b) != "f" {
		t.Fatalf("a → /b, a/f: b/f = %q, %v; want the file written inside the root", b, err)
	}
}
