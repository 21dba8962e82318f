package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Nobody is the uid and gid that tests run their non-root peers as.
const Nobody = 65534

// AsNobody copies the running test binary, as name, into a directory that
// nobody can reach and returns a function making a command that runs the
// copy as nobody (uid and gid Nobody) with args, in the copy's directory,
// with env and GORACE set so that a race build exits at once. The test
// binary's TestMain decides what the copy does (from env). A test that
// does not run as root fails: only root can start a process as nobody.
func AsNobody(tb testing.TB, name string) func(env []string, args ...string) *exec.Cmd {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("a non-root peer needs root to start it (setuid nobody)")
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		tb.Fatal(err)
	}
	bin := tb.TempDir()
	for _, dir := range []string{bin, filepath.Dir(bin)} { // the test's temp dir, and this one
		if err := os.Chmod(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(bin, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		tb.Fatal(err)
	}
	return func(env []string, args ...string) *exec.Cmd {
		cmd := exec.Command(path, args...)
		cmd.Env = append([]string{"GORACE=atexit_sleep_ms=0"}, env...)
		cmd.Dir = bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
		return cmd
	}
}

// OpenToAll lets every user connect to the unix socket at path (its
// directory searchable, the socket writable), as the daemon's socket group
// would: the tests' non-root peers are nobody, in no such group.
func OpenToAll(tb testing.TB, path string) {
	tb.Helper()
	for p, mode := range map[string]os.FileMode{filepath.Dir(path): 0o755, path: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			tb.Fatal(err)
		}
	}
}
