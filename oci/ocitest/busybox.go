// Package ocitest builds what tests of containers need: a root filesystem
// made of Debian's busybox-static (scripts/deps.sh installs it), and runc
// bundles run and cleaned up for real.
package ocitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Busybox is where Debian's busybox-static installs the static binary.
const Busybox = "/bin/busybox"

// BusyboxRootfs fills dir with a root filesystem: /bin/busybox, a symlink
// for each of its applets where Debian would put it (busybox --list-full),
// /etc/passwd and /etc/group with root, nobody and "app" (uid 1000, gid
// 1000, also in group "staff", gid 50), and the empty directories a
// runtime mounts on. It fails the test when busybox-static is missing.
func BusyboxRootfs(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Stat(Busybox); err != nil {
		tb.Fatalf("%s: %v (install Debian's busybox-static: scripts/deps.sh)", Busybox, err)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		tb.Fatalf("%s --list-full: %v", Busybox, err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "home/app"), 1000, 1000); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		link := filepath.Join(dir, applet)
		if applet == "bin/busybox" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			tb.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nstaff:x:50:app\nnogroup:x:65534:\napp:x:1000:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
