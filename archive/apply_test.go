package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (device nodes, ownership, trusted.* xattrs, overlay mounts); run the suite as root as CI does")
	}
}

func apply(t *testing.T, dir string, layer []byte, mode WhiteoutMode) (ApplyResult, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(layer), ApplyOptions{Whiteouts: mode})
}

func mustApply(t *testing.T, dir string, layer []byte, mode WhiteoutMode) ApplyResult {
	t.Helper()
	res, err := apply(t, dir, layer, mode)
	if err != nil {
		t.Fatalf("Apply = %v", err)
	}
	return res
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func TestApplySemantics(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	sparse := make([]byte, 8<<20)
	copy(sparse[4<<20:], "middle")
	layer := tartest.Tar(
		tartest.Entry{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, UID: 7, GID: 8},
		tartest.Entry{Name: "etc/passwd", Body: "root:x:0:0\n", Mode: 0o644, UID: 1, GID: 2},
		tartest.Entry{Name: "usr/bin/su", Body: "binary", Mode: 0o4755},
		tartest.Entry{Name: "usr/bin/sgid", Body: "x", Mode: 0o2711},
		tartest.Entry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		tartest.Symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
		tartest.Link("etc/passwd-hard", "etc/passwd"),
		tartest.Entry{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		tartest.Entry{Name: "dev/sda", Type: tar.TypeBlock, Major: 8, Minor: 0, Mode: 0o660},
		tartest.Entry{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		tartest.Entry{Name: "usr/bin/ping", Body: "ping", Mode: 0o755, Xattrs: map[string]string{
			"security.capability":      "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"user.note":                "hello",
			"trusted.overlay.redirect": "/etc",
		}},
		tartest.Entry{Name: "var/sparse", Body: string(sparse)},
		tartest.Entry{Name: "./a/very/" + strings.Repeat("long-component/", 20) + "file", Body: "pax long name"},
	)
	res := mustApply(t, dir, layer, WhiteoutOverlay)
	if res.DiffID != digest.FromBytes(layer) || res.Size != int64(len(layer)) || res.Compression != Uncompressed || res.Entries != 13 {
		t.Fatalf("result = %+v, want diff ID %s size %d", res, digest.FromBytes(layer), len(layer))
	}
	for _, tc := range []struct {
		path string
		mode uint32 // type and permission bits
		uid  uint32
	}{
		{"etc", unix.S_IFDIR | 0o750, 7},
		{"etc/passwd", unix.S_IFREG | 0o644, 1},
		{"usr/bin/su", unix.S_IFREG | 0o4755, 0},
		{"usr/bin/sgid", unix.S_IFREG | 0o2711, 0},
		{"tmp", unix.S_IFDIR | 0o1777, 0},
		{"etc/localtime", unix.S_IFLNK | 0o777, 0},
		{"dev/null", unix.S_IFCHR | 0o666, 0},
		{"dev/sda", unix.S_IFBLK | 0o660, 0},
		{"run/fifo", unix.S_IFIFO | 0o600, 0},
	} {
		st := lstat(t, filepath.Join(dir, tc.path))
		if st.Mode != tc.mode || st.Uid != tc.uid {
			t.Errorf("%s: mode %o uid %d, want %o uid %d", tc.path, st.Mode, st.Uid, tc.mode, tc.uid)
		}
	}
	if st := lstat(t, filepath.Join(dir, "dev/null")); st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null rdev = %x", st.Rdev)
	}
	if a, b := lstat(t, filepath.Join(dir, "etc/passwd")), lstat(t, filepath.Join(dir, "etc/passwd-hard")); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "etc/localtime")); target != "/usr/share/zoneinfo/UTC" {
		t.Errorf("symlink target = %q", target)
	}
	for p, st := range map[string]*syscall.Stat_t{"etc": lstat(t, filepath.Join(dir, "etc")), "etc/passwd": lstat(t, filepath.Join(dir, "etc/passwd"))} {
		if st.Mtim.Sec != tartest.Epoch.Unix() {
			t.Errorf("%s mtime = %d, want %d (directory times set after children)", p, st.Mtim.Sec, tartest.Epoch.Unix())
		}
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(dir, "usr/bin/ping"), "user.note", buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("user.note = %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "usr/bin/ping"), "security.capability", buf); err != nil {
		t.Errorf("security.capability: %v", err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "usr/bin/ping"), "trusted.overlay.redirect", buf); err == nil {
		t.Error("a layer set trusted.overlay.redirect: overlayfs's own attributes must not come from layers")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "var/sparse"))
	if !bytes.Equal(got, sparse) {
		t.Error("sparse file content differs")
	}
	if st := lstat(t, filepath.Join(dir, "var/sparse")); st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file uses %d bytes on disk, want its zero runs left as holes", st.Blocks*512)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a/very/"+strings.Repeat("long-component/", 20)+"file")); string(b) != "pax long name" {
		t.Errorf("long name content = %q", b)
	}
}

func TestApplyCompressions(t *testing.T) {
	layer := tartest.Tar(tartest.File("f", strings.Repeat("data", 100000)))
	for _, tc := range []struct {
		name string
		in   []byte
		want Compression
	}{
		{"plain", layer, Uncompressed},
		{"gzip", tartest.Gzip(layer), Gzip},
		{"zstd", tartest.Zstd(layer), Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustApply(t, t.TempDir(), tc.in, WhiteoutOverlay)
			if res.Compression != tc.want || res.DiffID != digest.FromBytes(layer) || res.Size != int64(len(layer)) {
				t.Fatalf("Apply(%s) = %+v, want %v with diff ID %s", tc.name, res, tc.want, digest.FromBytes(layer))
			}
		})
	}
	// A truncated stream is an error, not a short layer.
	gz := tartest.Gzip(layer)
	if _, err := apply(t, t.TempDir(), gz[:len(gz)/2], WhiteoutOverlay); err == nil {
		t.Fatal("Apply of a truncated gzip layer succeeded")
	}
}

func base() []byte {
	return tartest.Tar(
		tartest.Dir("keep/"), tartest.File("keep/a", "a"),
		tartest.Dir("opq/"), tartest.File("opq/lower", "lower"),
		tartest.File("gone", "gone"), tartest.Dir("gonedir/"), tartest.File("gonedir/x", "x"),
	)
}

func upper() []byte {
	return tartest.Tar(
		tartest.File(".wh.gone", ""),
		tartest.File(".wh.gonedir", ""),
		tartest.Dir("opq/"),
		tartest.File("opq/new", "new"), // before the marker: must survive it
		tartest.File("opq/.wh..wh..opq", ""),
		tartest.File("keep/b", "b"),
		tartest.File("keep/.wh.b", ""), // same layer: hides nothing
	)
}

// tree lists dir as "path type" lines, for comparing views.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			lines = append(lines, rel+" "+d.Type().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestWhiteoutsNative(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, base(), WhiteoutNative)
	mustApply(t, dir, upper(), WhiteoutNative)
	want := strings.Join([]string{"keep d---------", "keep/a ----------", "keep/b ----------", "opq d---------", "opq/new ----------"}, "\n")
	if got := tree(t, dir); got != want {
		t.Fatalf("native tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestWhiteoutsOverlay(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	lower, up, work, merged := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w"), filepath.Join(tmp, "m")
	for _, d := range []string{lower, up, work, merged} {
		os.Mkdir(d, 0o755)
	}
	mustApply(t, lower, base(), WhiteoutOverlay)
	mustApply(t, up, upper(), WhiteoutOverlay)
	st := lstat(t, filepath.Join(up, "gone"))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("whiteout gone: mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(up, "opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr = %q, %v", buf[:n], err)
	}
	// The real reader of these: an overlay mount.
	if err := unix.Mount("overlay", merged, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, up, work)); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	want := strings.Join([]string{"keep d---------", "keep/a ----------", "keep/b ----------", "opq d---------", "opq/new ----------"}, "\n")
	if got := tree(t, merged); got != want {
		t.Fatalf("merged overlay tree:\n%s\nwant:\n%s", got, want)
	}
}

// snapshot describes every file under dir but skip: what must not change.
func snapshot(t *testing.T, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[p] = desc
		return nil
	})
	return out
}

// escapeCases are layers (applied in order into one root) that try to reach
// outside it. The directory holding the root has "outside/sentinel" and
// "victim".
var escapeCases = []struct {
	name   string
	layers [][]byte
}{
	{"dotdot-file", [][]byte{tartest.Tar(tartest.File("../victim", "pwned"))}},
	{"dotdot-deep", [][]byte{tartest.Tar(tartest.File("a/b/../../../outside/sentinel", "pwned"))}},
	{"absolute", [][]byte{tartest.Tar(tartest.File("/outside/sentinel", "pwned"))}},
	{"symlink-dir-abs", [][]byte{tartest.Tar(tartest.Symlink("l", "/"), tartest.File("l/victim", "pwned"))}},
	{"symlink-dir-rel", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.File("l/sentinel", "pwned"))}},
	{"symlink-chain", [][]byte{tartest.Tar(tartest.Symlink("l1", "l2"), tartest.Symlink("l2", "sub/l3"), tartest.Dir("sub/"),
		tartest.Symlink("sub/l3", "../../outside"), tartest.File("l1/sentinel", "pwned"))}},
	{"symlink-later-layer", [][]byte{tartest.Tar(tartest.Symlink("l", "../../outside")), tartest.Tar(tartest.File("l/sentinel", "pwned"))}},
	{"symlink-then-file-same-name", [][]byte{tartest.Tar(tartest.Symlink("f", "../outside/sentinel"), tartest.File("f", "pwned"))}},
	{"symlink-file-then-write-through", [][]byte{tartest.Tar(tartest.Symlink("f", "../outside/sentinel")), tartest.Tar(tartest.File("f", "pwned"))}},
	{"hardlink-outside", [][]byte{tartest.Tar(tartest.Link("h", "../outside/sentinel"))}},
	{"hardlink-abs", [][]byte{tartest.Tar(tartest.Link("h", "/etc/passwd"))}},
	{"hardlink-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.Link("h", "l/sentinel"))}},
	{"hardlink-to-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside/sentinel"), tartest.Link("h", "l"), tartest.File("h", "pwned"))}},
	{"whiteout-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.File("l/.wh.sentinel", ""))}},
	{"whiteout-dotdot", [][]byte{tartest.Tar(tartest.File(".wh..", ""))}},
	{"whiteout-parent-dotdot", [][]byte{tartest.Tar(tartest.File("../.wh.victim", ""))}},
	{"opaque-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.File("l/.wh..wh..opq", ""))}},
	{"opaque-abs-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "/"), tartest.File("l/.wh..wh..opq", ""))}},
	{"device-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.Entry{Name: "l/dev", Type: tar.TypeChar, Major: 1, Minor: 3})}},
	{"dir-replaced-by-symlink", [][]byte{tartest.Tar(tartest.Dir("a/"), tartest.Symlink("a", "../outside"), tartest.File("a/sentinel", "pwned"), tartest.File("a/new", "pwned"))}},
	{"dir-replaced-by-abs-symlink", [][]byte{tartest.Tar(tartest.Dir("a/"), tartest.File("a/x", "x"), tartest.Symlink("a", "/.."), tartest.File("a/victim", "pwned"))}},
	{"dir-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside"), tartest.Entry{Name: "l/", Type: tar.TypeDir, Mode: 0o777})}},
	{"proc-magic-link", [][]byte{tartest.Tar(tartest.Symlink("p", "/proc/self/root"), tartest.File("p/victim", "pwned"))}},
	{"xattr-through-symlink", [][]byte{tartest.Tar(tartest.Symlink("l", "../outside/sentinel"), tartest.Entry{Name: "l", Type: tar.TypeSymlink, Link: "x", Xattrs: map[string]string{"user.x": "y"}})}},
	{"root-replaced", [][]byte{tartest.Tar(tartest.Symlink(".", "../outside"), tartest.File("victim", "pwned"))}},
	{"root-dir-attrs", [][]byte{tartest.Tar(tartest.Entry{Name: "./", Type: tar.TypeDir, Mode: 0o700}, tartest.File("x", "x"))}},
	{"long-name", [][]byte{tartest.Tar(tartest.File(strings.Repeat("a/", 2100)+"f", "x"))}},
	{"many-xattrs", [][]byte{tartest.Tar(tartest.Entry{Name: "f", Xattrs: func() map[string]string {
		m := map[string]string{}
		for i := 0; i < 200; i++ {
			m[fmt.Sprintf("user.x%d", i)] = "v"
		}
		return m
	}()})}},
}

func TestApplyEscapes(t *testing.T) {
	requireRoot(t)
	for _, mode := range []WhiteoutMode{WhiteoutOverlay, WhiteoutNative} {
		for _, tc := range escapeCases {
			t.Run(fmt.Sprintf("%s/%d", tc.name, mode), func(t *testing.T) {
				tmp := t.TempDir()
				rootDir := filepath.Join(tmp, "root")
				os.MkdirAll(filepath.Join(tmp, "outside"), 0o755)
				os.WriteFile(filepath.Join(tmp, "outside", "sentinel"), []byte("safe"), 0o644)
				os.WriteFile(filepath.Join(tmp, "victim"), []byte("safe"), 0o644)
				os.Mkdir(rootDir, 0o755)
				before := snapshot(t, tmp, rootDir)
				var errs []string
				for _, l := range tc.layers {
					if _, err := apply(t, rootDir, l, mode); err != nil {
						errs = append(errs, err.Error())
					}
				}
				after := snapshot(t, tmp, rootDir)
				for p, d := range before {
					if after[p] != d {
						t.Errorf("%s changed outside the root: %q -> %q (apply errors: %q)", p, d, after[p], errs)
					}
				}
				for p := range after {
					if _, ok := before[p]; !ok {
						t.Errorf("%s created outside the root (apply errors: %q)", p, errs)
					}
				}
				t.Logf("apply errors: %q", errs)
			})
		}
	}
}

func TestApplyLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		layer []byte
		lim   Limits
		want  string
	}{
		{"entries", tartest.Tar(tartest.File("a", ""), tartest.File("b", ""), tartest.File("c", "")), Limits{MaxEntries: 2, MaxPathLen: 100, MaxXattrs: 1, MaxXattrSize: 10}, "more than 2 entries"},
		{"path", tartest.Tar(tartest.File(strings.Repeat("x", 101), "")), Limits{MaxEntries: 2, MaxPathLen: 100, MaxXattrs: 1, MaxXattrSize: 10}, "longer than 100 bytes"},
		{"xattr-size", tartest.Tar(tartest.Entry{Name: "f", Xattrs: map[string]string{"user.big": strings.Repeat("v", 11)}}), Limits{MaxEntries: 2, MaxPathLen: 100, MaxXattrs: 1, MaxXattrSize: 10}, "exceeds 10"},
		{"not-tar", []byte(strings.Repeat("garbage", 100)), DefaultLimits, "read tar entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tc.layer), ApplyOptions{Limits: tc.lim})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, t.TempDir(), bytes.NewReader(tartest.Tar(tartest.File("a", ""))), ApplyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled context = %v", err)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "./a/b": "a/b", "/a/b/": "a/b", "a//b": "a/b", "a/./b": "a/b", "../a": "a", "a/../../b": "b",
		".": "", "/": "", "": "", "..": "", "a/b/..": "a", "...": "...", "a/.b": "a/.b", ".wh..wh..opq": ".wh..wh..opq",
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGzipDecompressors runs gzip layers through ISA-L's igzip (as strata
// does when it is installed) and through the Go decompressor: the same diff
// IDs, the same trees, and a truncated stream refused by both.
func TestGzipDecompressors(t *testing.T) {
	path, err := exec.LookPath("igzip")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("igzip (Debian package isal) is not installed; .ci/run installs it")
		}
		t.Log("igzip not installed: testing the Go decompressor only")
	}
	igzipOnce.Do(func() {})
	saved := igzip
	t.Cleanup(func() { igzip = saved })
	layer := tartest.Tar(tartest.Dir("d/"), tartest.File("d/f", strings.Repeat("igzip ", 50000)), tartest.Symlink("l", "d/f"))
	gz := tartest.Gzip(layer)
	for _, tc := range []struct{ name, path string }{{"go", ""}, {"igzip", path}, {"missing-binary", "/nonexistent/igzip"}} {
		if tc.name == "igzip" && path == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			igzip = tc.path
			var marker string
			if tc.name == "igzip" {
				// A wrapper that leaves a mark proves the binary ran.
				tmp := t.TempDir()
				marker = filepath.Join(tmp, "ran")
				wrapper := filepath.Join(tmp, "igzip")
				os.WriteFile(wrapper, []byte("#!/bin/sh\ntouch "+marker+"\nexec "+tc.path+" \"$@\"\n"), 0o755)
				igzip = wrapper
			}
			dir := t.TempDir()
			res := mustApply(t, dir, gz, WhiteoutOverlay)
			if res.DiffID != digest.FromBytes(layer) || res.Compression != Gzip {
				t.Fatalf("Apply = %+v, want diff ID %s", res, digest.FromBytes(layer))
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "d/f")); string(b) != strings.Repeat("igzip ", 50000) {
				t.Fatal("content differs")
			}
			if marker != "" {
				if _, err := os.Stat(marker); err != nil {
					t.Fatal("igzip was not used")
				}
			}
			if _, err := apply(t, t.TempDir(), gz[:len(gz)*2/3], WhiteoutOverlay); err == nil {
				t.Fatal("a truncated gzip layer was accepted")
			}
		})
	}
}

// failingReader fails with err once its data is read.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestApplyStreamErrors: issue 13 ("replace %v: %w with real wrapping"). A
// layer stream that cannot be read is an invalid layer, and the reader's
// error stays in the chain: a registry's 503 is still ErrUnavailable to
// errors.Is, while errdefs.Resolve (and so the gRPC code) says
// InvalidArgument as before.
func TestApplyStreamErrors(t *testing.T) {
	unavailable := fmt.Errorf("registry: 503 Service Unavailable: %w", errdefs.ErrUnavailable)
	small := tartest.Tar(tartest.File("a", "aaaa"), tartest.File("b", strings.Repeat("b", 4096)))
	large := tartest.Tar(tartest.File("big", strings.Repeat("x", 1<<20)))
	for _, tc := range []struct {
		name  string
		in    io.Reader
		cause error
		text  string
	}{
		{"tar entry", &failingReader{data: small[:1024], err: unavailable}, errdefs.ErrUnavailable, "archive: read tar entry 2: "},
		{"small file", bytes.NewReader(small[:1536+512]), io.ErrUnexpectedEOF, `archive: read "b": `},
		{"large file", &failingReader{data: large[:512+300<<10], err: unavailable}, errdefs.ErrUnavailable, `archive: read "big": `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), tc.in, ApplyOptions{Whiteouts: WhiteoutOverlay})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.Is(err, tc.cause) {
				t.Fatalf("Apply = %v, want an error that is both ErrInvalidArgument and %v", err, tc.cause)
			}
			if got := errdefs.Resolve(err); got != errdefs.ErrInvalidArgument {
				t.Errorf("errdefs.Resolve(Apply) = %v, want %v", got, errdefs.ErrInvalidArgument)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.text) || !strings.HasSuffix(msg, ": invalid argument") {
				t.Errorf("Apply = %q, want %q…: invalid argument", msg, tc.text)
			}
		})
	}
}
