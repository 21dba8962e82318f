package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
}

// tempRoot returns a temporary directory and makes sure nothing stays
// mounted below it, even when the test fails.
func tempRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		points, err := Under(root)
		if err != nil {
			t.Error(err)
		}
		if len(points) > 0 {
			t.Errorf("left mounted: %v", points)
		}
		if err := UnmountUnder(root); err != nil {
			t.Error(err)
		}
	})
	return root
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBindReadOnly(t *testing.T) {
	requireRoot(t)
	root := tempRoot(t)
	src, target := filepath.Join(root, "src"), filepath.Join(root, "target")
	mkdirs(t, src, target)
	write(t, filepath.Join(src, "f"), "x")
	if err := All([]Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}, target); err != nil {
		t.Fatal(err)
	}
	defer UnmountAll(target, 0)
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "x" {
		t.Fatalf("read through bind = %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write to ro bind = %v, want EROFS", err)
	}
	info, err := Lookup(filepath.Join(target, "f"))
	if err != nil || info.Mountpoint != target {
		t.Fatalf("Lookup = %+v, %v; want mount point %s", info, err, target)
	}
	if err := UnmountAll(target, 0); err != nil {
		t.Fatal(err)
	}
	if err := UnmountAll(target, 0); err != nil {
		t.Fatalf("UnmountAll of a plain directory = %v", err)
	}
}

// TestLongOverlay mounts 128 lower layers under a long root, whose option
// string is far beyond a page, with each method.
func TestLongOverlay(t *testing.T) {
	requireRoot(t)
	for _, method := range []string{"fsconfig", "relative"} {
		t.Run(method, func(t *testing.T) {
			root := tempRoot(t)
			base := filepath.Join(root, strings.Repeat("long-directory-name/", 3), "snapshots")
			var lowers []string
			for i := 1; i <= 128; i++ {
				d := filepath.Join(base, fmt.Sprint(i), "fs")
				mkdirs(t, d)
				write(t, filepath.Join(d, fmt.Sprintf("layer%d", i)), fmt.Sprint(i))
				write(t, filepath.Join(d, "top"), fmt.Sprint(i))
				lowers = append([]string{d}, lowers...)
			}
			upper, work, target := filepath.Join(base, "u", "fs"), filepath.Join(base, "u", "work"), filepath.Join(root, "target")
			mkdirs(t, upper, work, target)
			m := Mount{Type: "overlay", Source: "overlay", Options: []string{
				"index=off", "workdir=" + work, "upperdir=" + upper, "lowerdir=" + strings.Join(lowers, ":"),
			}}
			if n := len(strings.Join(m.Options, ",")); n < 2*pageSize {
				t.Fatalf("options are %d bytes; the test wants more than two pages", n)
			}
			if method == "relative" {
				noNewMountAPI.Store(true)
				defer noNewMountAPI.Store(false)
			} else if !lowerdirPlus(t) {
				t.Skip("kernel has no lowerdir+ (Linux < 6.8): only the relative method can be tested here")
			}
			err := WithTempMount(context.Background(), []Mount{m}, func(dir string) error {
				for _, name := range []string{"layer1", "layer64", "layer128"} {
					if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
						return err
					}
				}
				if b, err := os.ReadFile(filepath.Join(dir, "top")); err != nil || string(b) != "128" {
					return fmt.Errorf("top = %q, %v; want the newest layer's", b, err)
				}
				return os.WriteFile(filepath.Join(dir, "new"), []byte("n"), 0o644)
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
				t.Fatalf("write through overlay did not reach upperdir: %v", err)
			}
			if wd, _ := os.Getwd(); strings.HasPrefix(wd, base) {
				t.Fatalf("working directory of the process changed to %s", wd)
			}
		})
	}
}

// lowerdirPlus probes for fsconfig's "lowerdir+" with the smallest valid
// overlay: two lower layers and no upper (one lower alone is always
// refused, which is why an earlier probe skipped on every kernel).
func lowerdirPlus(t *testing.T) bool {
	t.Helper()
	root := tempRoot(t)
	a, b, target := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "t")
	mkdirs(t, a, b, target)
	err := mountOverlayFsconfig("overlay", target, unix.MS_RDONLY, []string{"lowerdir=" + a + ":" + b})
	if errors.Is(err, errNoLowerdirPlus) {
		return false
	}
	if err != nil {
		t.Fatalf("probe of lowerdir+ = %v", err)
	}
	if err := Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestFsconfigInvalidOptions: options the kernel refuses for their own sake
// (one lower layer and no upper) are an error that says so, not a reason to
// give up the new mount API for the rest of the process.
func TestFsconfigInvalidOptions(t *testing.T) {
	requireRoot(t)
	if legacyOverlayParser() {
		t.Skip("kernel older than 6.5 parses overlay options the legacy way: EINVAL cannot be told apart there")
	}
	root := tempRoot(t)
	lower, target := filepath.Join(root, "l"), filepath.Join(root, "t")
	mkdirs(t, lower, target)
	err := mountLongOverlay("overlay", target, 0, []string{"lowerdir=" + lower})
	if err == nil {
		_ = Unmount(target, 0)
		t.Fatal("mount of one lower layer without an upper succeeded")
	}
	if errors.Is(err, errNoLowerdirPlus) || noNewMountAPI.Load() {
		t.Fatalf("mountLongOverlay(one lower) = %v, noNewMountAPI = %v; want a plain error and the new API kept", err, noNewMountAPI.Load())
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("mountLongOverlay(one lower) = %v, want EINVAL", err)
	}
	t.Log(err)
}

func TestKernelBefore(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"6.1.0-18-amd64", true}, {"6.5.0", false}, {"6.4.16", true}, {"6.18.44-fc", false},
		{"5.15.0", true}, {"7.0", false}, {"garbage", true},
	} {
		if got := kernelBefore(c.release, 6, 5); got != c.want {
			t.Errorf("kernelBefore(%q, 6, 5) = %v, want %v", c.release, got, c.want)
		}
	}
}

func TestWithTempMountUnmountsOnPanic(t *testing.T) {
	requireRoot(t)
	root := tempRoot(t)
	src := filepath.Join(root, "src")
	mkdirs(t, src)
	var dir string
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the panic to continue", r)
			}
		}()
		_ = WithTempMount(context.Background(), []Mount{{Type: "bind", Source: src, Options: []string{"rbind"}}}, func(d string) error {
			dir = d
			panic("boom")
		})
	}()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary mount point %s after panic: %v", dir, err)
	}
	errFn := errors.New("fn failed")
	err := WithTempMount(context.Background(), []Mount{{Type: "bind", Source: src, Options: []string{"rbind"}}}, func(d string) error {
		dir = d
		return errFn
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("WithTempMount = %v, want fn's error", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary mount point %s after error: %v", dir, err)
	}
}

func TestUnmountUnder(t *testing.T) {
	requireRoot(t)
	root := tempRoot(t)
	src, a, b := filepath.Join(root, "src"), filepath.Join(root, "a"), filepath.Join(root, "a", "b")
	mkdirs(t, src, a)
	for _, target := range []string{a, b} {
		mkdirs(t, target)
		if err := All([]Mount{{Type: "bind", Source: src, Options: []string{"bind"}}}, target); err != nil {
			t.Fatal(err)
		}
	}
	points, err := Under(root)
	if err != nil || len(points) != 2 {
		t.Fatalf("Under = %v, %v; want 2 mounts", points, err)
	}
	if err := UnmountUnder(root); err != nil {
		t.Fatal(err)
	}
	if points, _ := Under(root); len(points) != 0 {
		t.Fatalf("after UnmountUnder: %v", points)
	}
}

// TestUnmountUnderKeepsRoot: a volume mounted at the root itself (a
// dedicated disk for snapshots) is not a stale mount.
func TestUnmountUnderKeepsRoot(t *testing.T) {
	requireRoot(t)
	root := tempRoot(t)
	vol := filepath.Join(root, "vol")
	mkdirs(t, vol)
	if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(vol, unix.MNT_DETACH) })
	sub, src := filepath.Join(vol, "sub"), filepath.Join(vol, "src")
	mkdirs(t, sub, src)
	if err := All([]Mount{{Type: "bind", Source: src, Options: []string{"bind"}}}, sub); err != nil {
		t.Fatal(err)
	}
	if err := UnmountUnder(vol); err != nil {
		t.Fatal(err)
	}
	points, _ := Under(vol)
	if len(points) != 1 || points[0] != vol {
		t.Fatalf("after UnmountUnder(%s): %v, want only the volume itself", vol, points)
	}
}

func TestCommonParent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paths []string
		want  string
	}{
		{"siblings", []string{"/r/s/1/fs", "/r/s/2/fs", "/r/s/3/work"}, "/r/s"},
		{"one", []string{"/r/s/1/fs"}, "/r/s/1"},
		{"root", []string{"/a/x", "/b/y"}, "/"},
		{"relative", []string{"a/x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := commonParent(tc.paths); got != tc.want {
				t.Errorf("commonParent(%q) = %q, want %q", tc.paths, got, tc.want)
			}
		})
	}
}

func TestCommand(t *testing.T) {
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a:/b", "upperdir=/c d"}}
	if got, want := m.Command("/mnt"), `mount -t overlay overlay -o 'lowerdir=/a:/b,upperdir=/c d' /mnt`; got != want {
		t.Errorf("Command = %s, want %s", got, want)
	}
}
