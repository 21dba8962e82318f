package jobs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// TestOpenRegular: an archive path that is a FIFO is refused at once
// instead of blocking the job (and a daemon's shutdown) on open.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openRegular(fifo)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("open of a FIFO: %v, want invalid argument", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open of a FIFO blocked")
	}
	file := filepath.Join(dir, "a.tar")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openRegular(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if n, err := f.Read(b); err != nil || string(b[:n]) != "data" {
		t.Fatalf("read = %q, %v", b[:n], err)
	}
}
