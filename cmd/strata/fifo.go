package main

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fifoCopies copies what a shim writes into FIFOs (a process's stdout
// and stderr) to our writers.
type fifoCopies struct {
	wg    sync.WaitGroup
	paths []string
	done  []chan struct{}
}

// add makes a FIFO at path and copies what is written to it into w until
// its writer (the shim) closes it. The copy's open waits for the shim to
// open its end.
func (c *fifoCopies) add(path string, w io.Writer) error {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return err
	}
	done := make(chan struct{})
	c.paths, c.done = append(c.paths, path), append(c.done, done)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(w, f)
	}()
	return nil
}

// wait returns once every copy has ended: the shim has closed its ends.
func (c *fifoCopies) wait() { c.wg.Wait() }

// abandon ends the copies of FIFOs the shim will never open (create or
// start refused) and waits for them. Opening the write end ourselves
// gives a waiting reader its writer, and closing it its EOF; but until
// the copy's goroutine has reached its open, a non-blocking open of the
// write end fails (no reader), so it is tried again until the copy ends.
func (c *fifoCopies) abandon() {
	for i, p := range c.paths {
		for ended := false; !ended; {
			if f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			select {
			case <-c.done[i]:
				ended = true
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	c.wg.Wait()
}

// feedStdin copies in to the stdin FIFO at path once the shim has opened
// its read end, then calls closeIO: the shim holds the FIFO open for
// writing itself, so our close alone is no EOF for the process. The open
// blocks until the shim's reader is there: shims open their ends
// asynchronously, so they may not be open yet when Create or Start
// returns, and a non-blocking open would then fail and lose the input.
// The returned function ends a wait that can no longer be met (the
// process has exited or never started); call it once the process is done.
func feedStdin(path string, in io.Reader, closeIO func()) (done func()) {
	var (
		mu    sync.Mutex
		ended bool
	)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		mu.Lock()
		gone := ended
		mu.Unlock()
		if gone {
			return
		}
		io.Copy(w, in)
		w.Close()
		closeIO()
	}()
	return func() {
		mu.Lock()
		ended = true
		mu.Unlock()
		// A reader that comes and goes lets a pending open return.
		if r, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
	}
}
