package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFIFOCopiesAbandon: when create or start is refused, the shim never
// opens its ends and the copies must end anyway, whether or not their
// goroutines have reached their open yet. (The write end was opened once,
// non-blocking: before the reader's open that fails, and run --rm
// --network nosuchnet waited forever once on a loaded machine.)
func TestFIFOCopiesAbandon(t *testing.T) {
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		for i := 0; i < 20; i++ {
			dir := t.TempDir()
			var c fifoCopies
			for _, name := range []string{"stdout", "stderr"} {
				if err := c.add(filepath.Join(dir, name), &bytes.Buffer{}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(delay) // 0: abandoned before the readers open
			ended := make(chan struct{})
			go func() {
				c.abandon()
				close(ended)
			}()
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatalf("abandon after %v: the copies did not end", delay)
			}
		}
	}
}

// TestFIFOCopies: what the writer writes reaches ours, and wait returns
// once it closes its end.
func TestFIFOCopies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stdout")
	var out bytes.Buffer
	var c fifoCopies
	if err := c.add(p, &out); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("from the shim\n")
	w.Close()
	c.wait()
	if out.String() != "from the shim\n" {
		t.Errorf("copied %q", out.String())
	}
}
