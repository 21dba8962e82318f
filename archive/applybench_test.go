package archive_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"testing"
	"time"

	"github.com/strata-oci/strata/archive"
)

// TestMain doubles as a stand-alone layer applier, so that one apply can be
// timed as a process of its own (wall time and peak RSS with GNU time, see
// bench/apply.sh), beside `tar -x` on the same blob:
//
//	go test -c -o /tmp/applybench ./archive
//	STRATA_APPLY_FILE=layer.tar.gz STRATA_APPLY_DIR=/empty/dir /tmp/applybench
//
// prints "DIFFID SIZE ENTRIES COMPRESSION" and exits 0, or prints the error
// and exits 1. STRATA_APPLY_CPUPROFILE=FILE writes a CPU profile of the
// apply, STRATA_APPLY_TRACE=FILE an execution trace (blocking, goroutines),
// STRATA_APPLY_MEMPROFILE=FILE a heap profile (see -sample_index=alloc_space).
// Without STRATA_APPLY_FILE and STRATA_APPLY_DIR the tests run as usual.
func TestMain(m *testing.M) {
	file, dir := os.Getenv("STRATA_APPLY_FILE"), os.Getenv("STRATA_APPLY_DIR")
	if file == "" || dir == "" {
		os.Exit(m.Run())
	}
	if err := applyMain(file, dir); err != nil {
		fmt.Fprintln(os.Stderr, "applybench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func applyMain(file, dir string) (err error) {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if p := os.Getenv("STRATA_APPLY_CPUPROFILE"); p != "" {
		pf, err := os.Create(p)
		if err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := pf.Close(); err == nil {
				err = cerr
			}
		}()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	if p := os.Getenv("STRATA_APPLY_TRACE"); p != "" {
		tf, err := os.Create(p)
		if err != nil {
			return err
		}
		defer func() {
			trace.Stop()
			if cerr := tf.Close(); err == nil {
				err = cerr
			}
		}()
		if err := trace.Start(tf); err != nil {
			return err
		}
	}
	res, err := archive.Apply(context.Background(), dir, f, archive.ApplyOptions{Whiteouts: archive.WhiteoutOverlay})
	if err != nil {
		return err
	}
	if p := os.Getenv("STRATA_APPLY_MEMPROFILE"); p != "" {
		mf, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(mf, 0); err != nil {
			mf.Close()
			return err
		}
		if err := mf.Close(); err != nil {
			return err
		}
	}
	fmt.Printf("%s %d %d %s\n", res.DiffID, res.Size, res.Entries, res.Compression)
	return nil
}

// BenchmarkApplyCorpus applies every file of the directory named by
// STRATA_BENCH_LAYERS (e.g. the layers of ../shared/bench/mkimages.sh, or
// symlinks to some of them), one sub-benchmark per file, each iteration into
// a fresh directory (under STRATA_BENCH_DIR if set, else the test's temp
// dir: put it on the filesystem that matters). MB/s is of the compressed
// blob. As the baseline, each iteration also times `tar -x` of the same
// blob into another fresh directory, outside the benchmark timer, and
// reports x-tar, strata's time over tar's (below 1 is faster).
func BenchmarkApplyCorpus(b *testing.B) {
	layers := os.Getenv("STRATA_BENCH_LAYERS")
	if layers == "" {
		b.Skip("set STRATA_BENCH_LAYERS to a directory of layer blobs (tar, tar.gz, tar.zst) to run this benchmark")
	}
	ents, err := os.ReadDir(layers)
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		p := filepath.Join(layers, e.Name())
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		b.Fatalf("STRATA_BENCH_LAYERS=%s holds no files", layers)
	}
	sort.Strings(files)
	tarPath, _ := exec.LookPath("tar")
	for _, file := range files {
		b.Run(filepath.Base(file), func(b *testing.B) {
			fi, err := os.Stat(file)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(fi.Size())
			base := os.Getenv("STRATA_BENCH_DIR")
			if base == "" {
				base = b.TempDir()
			}
			work, err := os.MkdirTemp(base, "applybench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(work)
			tarFlag, err := tarDecompressFlag(file)
			if err != nil {
				b.Fatal(err)
			}
			fresh := func(name string) string {
				d := filepath.Join(work, name)
				if err := os.RemoveAll(d); err != nil {
					b.Fatal(err)
				}
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				return d
			}
			var strataTime, tarTime time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dst := fresh("strata")
				f, err := os.Open(file)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				b.StartTimer()
				_, err = archive.Apply(context.Background(), dst, f, archive.ApplyOptions{Whiteouts: archive.WhiteoutOverlay})
				b.StopTimer()
				strataTime += time.Since(start)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				if tarPath != "" {
					dst := fresh("tar")
					args := []string{"-x", "--numeric-owner", "-f", file, "-C", dst}
					if tarFlag != "" {
						args = append([]string{tarFlag}, args...)
					}
					start := time.Now()
					if out, err := exec.Command(tarPath, args...).CombinedOutput(); err != nil {
						b.Fatalf("tar %v: %v\n%s", args, err, out)
					}
					tarTime += time.Since(start)
				}
				b.StartTimer()
			}
			b.StopTimer()
			if tarTime > 0 {
				b.ReportMetric(float64(strataTime)/float64(tarTime), "x-tar")
			}
		})
	}
}

// tarDecompressFlag picks GNU tar's decompression flag from the blob's magic.
func tarDecompressFlag(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	switch archive.DetectCompression(head[:n]) {
	case archive.Gzip:
		return "-z", nil
	case archive.Zstd:
		return "--zstd", nil
	}
	return "", nil
}
