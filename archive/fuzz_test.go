package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
)

// fuzzCache is the descriptor cache size while fuzzing: any layer with
// more than two directories overflows it, so eviction happens in nearly
// every input instead of only in layers of over 128 directories.
const fuzzCache = 2

// FuzzApply applies arbitrary bytes as a layer, in both whiteout modes, and
// asserts the property that matters: nothing outside the root changes (and
// nothing panics). Each input is applied into two roots at once while
// another goroutine opens and closes descriptors, as a daemon applying
// several layers does. shape describes a valid layer (see validLayer),
// which must apply, concurrently too, and give the tree it describes. The
// escape table, a few plain layers and layers of more directories than the
// cache holds are its seeds.
func FuzzApply(f *testing.F) {
	setDirCache(f, fuzzCache)
	for _, tc := range escapeCases {
		for _, l := range tc.layers {
			f.Add(l, false, []byte{})
		}
	}
	f.Add(base(), true, []byte{})
	f.Add(upper(), false, []byte{})
	f.Add(tartest.Gzip(base()), true, []byte{})
	f.Add(manyDirsLink(5), false, []byte{})
	f.Add(manyDirsLink(5), true, []byte{})
	f.Add(hostileManyDirs(4), false, []byte{})
	f.Add(tartest.Tar(tartest.Link("x", "etc/passwd"), tartest.Link("y", "etc/l"), tartest.Link("d/g", "d/f"), tartest.Link("z", "out/sentinel"),
		tartest.File("etc/passwd", "pwned"), tartest.File("y", "pwned"), tartest.File("d/f", "pwned")), false, []byte{})
	f.Add([]byte{}, false, []byte{0, 0, 0, 4, 1, 8, 1, 2, 0, 5, 9, 1, 3, 2, 0, 6, 7, 3, 1})
	f.Add([]byte{}, true, []byte{0, 1, 4, 0, 2, 4, 1, 0, 0, 1, 2, 2, 0, 0, 1, 2, 1, 2, 1, 3})
	f.Fuzz(func(t *testing.T, layer []byte, native bool, shape []byte) {
		mode := WhiteoutOverlay
		if native {
			mode = WhiteoutNative
		}
		opts := ApplyOptions{Whiteouts: mode, Limits: Limits{MaxEntries: 1000, MaxPathLen: 4096, MaxXattrs: 16, MaxXattrSize: 4096}}
		applyConfined(t, layer, opts)
		if len(shape) > 0 {
			v := validLayer(shape)
			dirs, errs := applyConfined(t, v.tar, opts)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Apply(valid layer of shape %v) into root %d = %v", shape, i, err)
				}
				v.check(t, dirs[i])
			}
		}
	})
}

// applyConfined applies layer into two fresh roots concurrently, with a
// goroutine churning descriptors of the directory outside, fails the test
// if anything outside the roots changed, and returns the roots and the
// applies' errors.
// Each root holds symlinks out of it for entries to trip over; in overlay
// mode a parent layer outside the roots has files to hard-link.
func applyConfined(t *testing.T, layer []byte, opts ApplyOptions) (dirs []string, errs []error) {
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside")
	roots := filepath.Join(tmp, "roots")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "sentinel"), []byte("safe"), 0o644)
	os.WriteFile(filepath.Join(tmp, "victim"), []byte("safe"), 0o644)
	os.Symlink("../outside", filepath.Join(outside, "loop"))
	os.Mkdir(roots, 0o755)
	// A parent layer for overlay mode, whose files hard links copy up:
	// outside the roots, so it must not change either.
	lower := filepath.Join(tmp, "lower")
	os.MkdirAll(filepath.Join(lower, "etc"), 0o755)
	os.MkdirAll(filepath.Join(lower, "d"), 0o755)
	os.WriteFile(filepath.Join(lower, "etc", "passwd"), []byte("lower"), 0o4755)
	os.WriteFile(filepath.Join(lower, "d", "f"), []byte("lower"), 0o644)
	os.Symlink("../../outside/sentinel", filepath.Join(lower, "etc", "l"))
	os.Symlink("../outside", filepath.Join(lower, "out"))
	if opts.Whiteouts == WhiteoutOverlay && opts.Parents == nil {
		opts.Parents = []string{lower}
	}
	dirs = []string{filepath.Join(roots, "a"), filepath.Join(roots, "b")}
	for _, d := range dirs {
		os.Mkdir(d, 0o755)
		os.Symlink("../../outside", filepath.Join(d, "out"))
		os.Symlink("/", filepath.Join(d, "slash"))
	}
	before := snapshot(t, tmp, roots)

	stop := make(chan struct{})
	churn := churnFds(1, 4, outside, stop)
	errs = make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Apply(context.Background(), d, bytes.NewReader(layer), opts)
		}()
	}
	wg.Wait()
	close(stop)
	churn.Wait()

	after := snapshot(t, tmp, roots)
	for p, d := range before {
		if after[p] != d {
			t.Fatalf("%s changed outside the root: %q -> %q", p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Fatalf("%s created outside the root", p)
		}
	}
	if errs[0] == nil && errs[1] == nil {
		if a, b := fuzzTree(t, dirs[0]), fuzzTree(t, dirs[1]); a != b {
			t.Fatalf("the same layer applied twice gave two trees:\n%s", lineDiff(a, b))
		}
	}
	return dirs, errs
}

// fuzzTree lists dir's names with type, size and link target: what two
// applies of one layer must agree on.
func fuzzTree(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %v %d", rel, fi.Mode(), fi.Size())
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

// validShape is a layer built by validLayer with what it must produce.
type validShape struct {
	tar      []byte
	files    map[string]string // name → content
	links    map[string]string // hard link → its target
	symlinks map[string]string // name → target
}

// check fails the test unless dir holds what the layer describes.
func (v validShape) check(t *testing.T, dir string) {
	t.Helper()
	for name, body := range v.files {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != body {
			t.Fatalf("%s = %q, %v; want %q", name, b, err, body)
		}
	}
	for name, target := range v.links {
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, name), &a); err != nil {
			t.Fatalf("hard link %s: %v", name, err)
		}
		if err := unix.Lstat(filepath.Join(dir, target), &b); err != nil || a.Ino != b.Ino {
			t.Fatalf("hard link %s: inode %d, its target %s has %d (%v)", name, a.Ino, target, b.Ino, err)
		}
	}
	for name, target := range v.symlinks {
		if l, err := os.Readlink(filepath.Join(dir, name)); err != nil || l != target {
			t.Fatalf("symlink %s -> %q, %v; want %q", name, l, err, target)
		}
	}
}

// validLayer turns fuzz bytes into a valid layer: directories (nested),
// files in them, hard links to earlier files, and symlinks with arbitrary
// targets (never used as parents), every name new. Each byte picks an
// operation and the next one where it goes; a few bytes make more
// directories than the fuzz cache holds.
func validLayer(shape []byte) validShape {
	v := validShape{files: map[string]string{}, links: map[string]string{}, symlinks: map[string]string{}}
	dirs := []string{""}
	var files []string
	var es []tartest.Entry
	next := func(i *int) int {
		if *i >= len(shape) {
			return 0
		}
		b := int(shape[*i])
		*i++
		return b
	}
	for i, n := 0, 0; i < len(shape) && n < 600; n++ {
		op, at := next(&i)%4, next(&i)
		parent := dirs[at%len(dirs)]
		name := fmt.Sprintf("%s%c%d", parent, "dfhs"[op], n)
		switch op {
		case 0:
			es = append(es, tartest.Dir(name+"/"))
			dirs = append(dirs, name+"/")
		case 1:
			es = append(es, tartest.Entry{Name: name, Body: name, Mode: int64(0o400 + at%0o377)})
			files = append(files, name)
			v.files[name] = name
		case 2:
			if len(files) == 0 {
				continue
			}
			target := files[at%len(files)]
			es = append(es, tartest.Link(name, target))
			v.links[name] = target
		case 3:
			targets := []string{"../outside", "/", "/etc/passwd", "..", "out/sentinel", "./" + dirs[at%len(dirs)]}
			target := targets[at%len(targets)]
			es = append(es, tartest.Symlink(name, target))
			v.symlinks[name] = target
		}
	}
	v.tar = tartest.Tar(es...)
	return v
}
