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

// manyDirsLink is a valid layer whose hard link comes after more
// directories than the descriptor cache holds: looking up the target's
// directory makes room in the cache while the link's own directory is in
// use (issue 11, item 1).
func manyDirsLink(dirs int) []byte {
	es := []tartest.Entry{tartest.Dir("t/"), tartest.File("t/target", "target")}
	for i := 1; i <= dirs; i++ {
		es = append(es, tartest.Dir(fmt.Sprintf("d%d/", i)), tartest.File(fmt.Sprintf("d%d/f", i), "f"))
	}
	return tartest.Tar(append(es, tartest.Link(fmt.Sprintf("d%d/link", dirs), "t/target"))...)
}

func TestApplyHardLinkAfterManyDirs(t *testing.T) {
	for _, mode := range []WhiteoutMode{WhiteoutOverlay, WhiteoutNative} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			dir := t.TempDir()
			if _, err := apply(t, dir, manyDirsLink(255), mode); err != nil {
				t.Fatalf("Apply(t/target, d1…d255, d255/link → t/target) = %v, want success", err)
			}
			a, b := lstat(t, filepath.Join(dir, "t/target")), lstat(t, filepath.Join(dir, "d255/link"))
			if a.Ino != b.Ino || a.Nlink != 2 {
				t.Fatalf("d255/link: inode %d nlink %d, want t/target's inode %d with nlink 2", b.Ino, b.Nlink, a.Ino)
			}
		})
	}
}

// churnFds opens and closes directories outside the root on n goroutines
// until stop is closed, each holding up to hold descriptors at a time: what
// a daemon applying several layers at once does to descriptor numbers. A
// descriptor the applier closed while still using it is soon one of these.
func churnFds(n, hold int, dir string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fds := make([]int, 0, hold)
			for {
				select {
				case <-stop:
					for _, fd := range fds {
						unix.Close(fd)
					}
					return
				default:
				}
				for len(fds) < hold {
					fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
					if err != nil {
						break
					}
					fds = append(fds, fd)
				}
				for _, fd := range fds {
					unix.Close(fd)
				}
				fds = fds[:0]
			}
		}()
	}
	return &wg
}

// hostileManyDirs is a layer of hard links, each right after enough
// directories that the lookup of its target's directory overflows a cache
// of two descriptors: with the link's directory descriptor closed under the
// applier and reused by a neighbour, the link would land outside the root.
func hostileManyDirs(links int) []byte {
	es := []tartest.Entry{tartest.Dir("t/"), tartest.File("t/target", "target")}
	for i := 0; i < links; i++ {
		for _, d := range []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)} {
			es = append(es, tartest.Dir(d+"/"), tartest.File(d+"/f", "f"))
		}
		es = append(es, tartest.Link(fmt.Sprintf("b%d/pwned%d", i, i), "t/target"))
	}
	return tartest.Tar(es...)
}

// setDirCache makes the descriptor cache hold n directories for the test.
func setDirCache(t testing.TB, n int) {
	saved := maxCachedDirs
	maxCachedDirs = n
	t.Cleanup(func() { maxCachedDirs = saved })
}

// TestApplyConfinedUnderDescriptorChurn applies layers that overflow the
// descriptor cache on two goroutines while others open and close
// descriptors of a directory outside the root, and checks that nothing
// outside the roots changed and that every (valid) layer applied. The
// cache holds two directories, so that nearly every entry evicts.
func TestApplyConfinedUnderDescriptorChurn(t *testing.T) {
	setDirCache(t, 2)
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "sentinel"), []byte("safe"), 0o644)
	roots := filepath.Join(tmp, "roots")
	os.Mkdir(roots, 0o755)
	before := snapshot(t, tmp, roots)

	stop := make(chan struct{})
	churn := churnFds(2, 8, outside, stop)
	defer func() {
		close(stop)
		churn.Wait()
	}()
	layer := hostileManyDirs(100)
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	var wg sync.WaitGroup
	errs := make(chan error, rounds*2)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				d, err := os.MkdirTemp(roots, "r")
				if err != nil {
					errs <- err
					return
				}
				mode := WhiteoutMode(i % 2)
				if _, err := Apply(context.Background(), d, bytes.NewReader(layer), ApplyOptions{Whiteouts: mode}); err != nil {
					errs <- fmt.Errorf("Apply(round %d, whiteout mode %d) = %w", i, mode, err)
				}
				os.RemoveAll(d)
			}
		}()
	}
	wg.Wait()
	close(errs)
	after := snapshot(t, tmp, roots)
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed outside the root: %q -> %q", p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created outside the root", p)
		}
	}
	for err := range errs {
		t.Error(err)
	}
}
