package wiring

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestLockRoot(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	daemon, err := lockRoot(ctx, root, Config{Holder: "stratad"})
	if err != nil {
		t.Fatal(err)
	}
	// A daemon's root is not waited for, whatever the timeout.
	_, err = lockRoot(ctx, root, Config{Holder: "strata pull", LockTimeout: -1})
	var locked *LockedError
	if !errors.As(err, &locked) || !errors.Is(err, errdefs.ErrUnavailable) || locked.PID != os.Getpid() || locked.Holder != "stratad" || !locked.Daemon() || locked.Waited {
		t.Fatalf("lock of a daemon's root = %#v", err)
	}
	daemon.release()

	cmd, err := lockRoot(ctx, root, Config{Holder: "strata pull"})
	if err != nil {
		t.Fatal(err)
	}
	// A command's root: 0 fails at once, a bound waits and gives up.
	_, err = lockRoot(ctx, root, Config{Holder: "strata images ls"})
	if !errors.As(err, &locked) || locked.Waited || locked.Daemon() {
		t.Fatalf("lock with no wait = %#v", err)
	}
	_, err = lockRoot(ctx, root, Config{Holder: "strata images ls", LockTimeout: 100 * time.Millisecond})
	if !errors.As(err, &locked) || !locked.Waited || !strings.Contains(err.Error(), "strata pull") {
		t.Fatalf("lock with a bounded wait = %v", err)
	}
	// Without a bound it is told who holds it and gets the lock once free.
	told := make(chan string, 1)
	got := make(chan error, 1)
	go func() {
		l, err := lockRoot(ctx, root, Config{Holder: "strata images ls", LockTimeout: -1, OnLockWait: func(h string) { told <- h }})
		if err == nil {
			l.release()
		}
		got <- err
	}()
	if h := <-told; !strings.HasSuffix(h, ": strata pull") {
		t.Fatalf("OnLockWait(%q), want the pull named", h)
	}
	cmd.release()
	if err := <-got; err != nil {
		t.Fatalf("lock after the holder let go = %v", err)
	}
	// Ctrl-C while waiting.
	cmd, _ = lockRoot(ctx, root, Config{Holder: "strata pull"})
	defer cmd.release()
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := lockRoot(cctx, root, Config{Holder: "strata images ls", LockTimeout: -1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("lock cancelled while waiting = %v", err)
	}
}
