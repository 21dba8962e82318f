package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// hostNetLock is the file every test that changes the host's network
// (bridges, veths, iptables rules, network namespaces) locks for its whole
// run, across the test processes `go test ./...` runs side by side.
// It lives beside the cached test tools, which outlive every run.
const hostNetLock = "/var/cache/strata-test/hostnet.lock"

// LockHostNetwork makes the test the only one changing the host's network
// until it ends: tests that compare the host's links and rules before and
// after would otherwise see each other's. Register it before anything that
// sets up networking, so that the unlock runs after every cleanup.
func LockHostNetwork(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(hostNetLock), 0o755); err != nil {
		t.Fatalf("host network lock: %v", err)
	}
	f, err := os.OpenFile(hostNetLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("host network lock: %v", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("host network lock %s: %v", hostNetLock, err)
	}
	t.Cleanup(func() { f.Close() })
}
