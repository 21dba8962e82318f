package main

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFeedStdinLateReader: a shim opens its end of the stdin FIFO
// asynchronously, possibly after Start has returned. The input still
// reaches it, and closeIO comes after the last byte. (Opening our end
// without waiting lost the input, and exec -i cat hung under load.)
func TestFeedStdinLateReader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stdin")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	done := feedStdin(p, strings.NewReader("to exec\n"), func() { close(closed) })
	defer done()
	time.Sleep(100 * time.Millisecond) // the shim is slow to open its end
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "to exec\n" {
		t.Fatalf("read %q, %v; want the whole input", got, err)
	}
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("closeIO was not called after the input ended")
	}
}

// TestFeedStdinNoReader: when the process ends without its shim ever
// opening the FIFO, done lets the pending open go and closeIO is not
// called for a process that is gone.
func TestFeedStdinNoReader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stdin")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	called := make(chan struct{}, 1)
	done := feedStdin(p, strings.NewReader("x"), func() { called <- struct{}{} })
	time.Sleep(50 * time.Millisecond)
	done()
	// The goroutine waiting in open has ended.
	deadline := time.Now().Add(time.Minute)
	for {
		buf := make([]byte, 1<<20)
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "strata.feedStdin.func") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the open waiting for a reader did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-called:
		t.Fatal("closeIO called although the process was done")
	case <-time.After(200 * time.Millisecond):
	}
}
