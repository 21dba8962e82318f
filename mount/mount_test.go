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
			} else if err := mountOverlayFsconfig("overlay", t.TempDir(), 0, []string{"lowerdir=" + lowers[0]}); errors.Is(err, errNoLowerdirPlus) {
				t.Skip("kernel has no lowerdir+ (Linux < 6.8)")
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
