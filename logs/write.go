package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// writer appends entries to json.log, rotating it by size.
type writer struct {
	cfg  Config
	mu   sync.Mutex
	f    *os.File
	size int64
}

func openWriter(cfg Config) (*writer, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	w := &writer{cfg: cfg}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *writer) open() error {
	f, err := os.OpenFile(filepath.Join(w.cfg.Dir, currentName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logs: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

func (w *writer) write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg.MaxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.cfg.MaxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("logs: write %s: %w", w.f.Name(), err)
	}
	return nil
}

// rotate shifts json.log.i to json.log.i+1, dropping the oldest, and
// starts a new json.log; with one file it starts json.log afresh. A
// follower holding the old json.log reads it to its end before moving on.
func (w *writer) rotate() error {
	unlock, err := lockDir(w.cfg.Dir, true)
	if err != nil {
		return err
	}
	defer unlock()
	w.f.Close()
	cur := filepath.Join(w.cfg.Dir, currentName)
	if w.cfg.MaxFiles <= 1 {
		if err := os.Remove(cur); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logs: rotate: %w", err)
		}
		return w.open()
	}
	for i := w.cfg.MaxFiles - 1; i >= 1; i-- {
		from := cur + "." + strconv.Itoa(i-1)
		if i == 1 {
			from = cur
		}
		err := os.Rename(from, cur+"."+strconv.Itoa(i))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logs: rotate: %w", err)
		}
	}
	return w.open()
}

func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// copyStream writes each line read from r as an entry of stream.
func (w *writer) copyStream(r io.Reader, stream string) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if werr := w.write(Entry{Log: string(line), Stream: stream, Time: time.Now().UTC()}); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("logs: read %s: %w", stream, err)
		}
	}
}

// Serve is the logger process's work: it marks the log as being written,
// tells the shim it is ready (closes ready), copies stdout and stderr into
// the log until both end, then marks it done. ctx ends it early (the
// shim's SIGTERM after the streams end is no reason to stop before they
// have been drained: the caller cancels ctx only when it must go).
func Serve(ctx context.Context, cfg Config, stdout, stderr io.Reader, ready io.Closer) error {
	w, err := openWriter(cfg)
	if err != nil {
		ready.Close()
		return err
	}
	defer w.close()
	// A restarted container appends; its followers wait again.
	if err := os.Remove(filepath.Join(cfg.Dir, doneName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		ready.Close()
		return fmt.Errorf("logs: %w", err)
	}
	if err := ready.Close(); err != nil {
		return fmt.Errorf("logs: ready: %w", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- w.copyStream(stdout, "stdout") }()
	go func() { errc <- w.copyStream(stderr, "stderr") }()
	var errs []error
	for range 2 {
		select {
		case err := <-errc:
			errs = append(errs, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, doneName), nil, 0o640); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	return nil
}

// lockDir takes a flock on the log directory: exclusive while the writer
// renames the files, shared while a reader lists them, so a reader never
// sees a rotation half done.
func lockDir(dir string, exclusive bool) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("logs: lock %s: %w", dir, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(fd, how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("logs: lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// Remove removes a container's logs (on rm).
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("logs: remove %s: %w", dir, err)
	}
	return nil
}
