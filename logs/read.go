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
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// ReadOptions says what Read gives.
type ReadOptions struct {
	// Tail is how many of the last entries to give; < 0 gives all.
	Tail int
	// Follow keeps giving entries as they are written, until the logger
	// marks the log done or ctx ends. The logger sees its streams end
	// when the shim closes them, at the task's deletion (not at its
	// exit): delete the task on exit, as dockerd does, or give Stopped.
	Follow bool
	// Stopped, when set, says the container's task is no longer running:
	// a follower then also stops once the log has stayed still for a few
	// polls (what the logger copies after the exit comes within them).
	Stopped func() bool
	// Poll is how often a follower looks for new entries (default 100 ms).
	Poll time.Duration
}

// Read gives fn a container's log entries, oldest first, from the rotated
// files and json.log, as opts says. A directory with no log is
// ErrNotFound; a line that is not JSON is ErrDataLoss naming the file.
func Read(ctx context.Context, dir string, opts ReadOptions, fn func(Entry) error) error {
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logs: %s: no log: %w", dir, errdefs.ErrNotFound)
	}
	r := &reader{ctx: ctx, dir: dir, fn: fn}
	if opts.Tail >= 0 {
		r.ring = make([]Entry, 0, opts.Tail)
		r.tail = opts.Tail
		r.fn = r.keep
	}
	cur, err := r.readAll()
	if err != nil {
		return err
	}
	if cur != nil {
		defer cur.f.Close()
	}
	if opts.Tail >= 0 {
		for _, e := range r.ring {
			if err := fn(e); err != nil {
				return err
			}
		}
		r.fn = fn
	}
	if !opts.Follow {
		return nil
	}
	return r.follow(cur, opts)
}

type reader struct {
	ctx context.Context
	dir string
	fn  func(Entry) error
	// given counts the entries given, for follow to see progress.
	given int
	tail  int
	ring  []Entry
}

func (r *reader) keep(e Entry) error {
	if r.tail == 0 {
		return nil
	}
	if len(r.ring) == r.tail {
		copy(r.ring, r.ring[1:])
		r.ring = r.ring[:len(r.ring)-1]
	}
	r.ring = append(r.ring, e)
	return nil
}

// file is an open log file and the line read so far without its newline.
type file struct {
	f       *os.File
	br      *bufio.Reader
	pending []byte
	ino     uint64
}

func (r *reader) open(name string) (*file, error) {
	f, err := os.Open(filepath.Join(r.dir, name))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &file{f: f, br: bufio.NewReader(f), ino: fi.Sys().(*syscall.Stat_t).Ino}, nil
}

// drain gives the complete lines of lf up to its end.
func (r *reader) drain(lf *file) error {
	for {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		line, err := lf.br.ReadSlice('\n')
		lf.pending = append(lf.pending, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil // a line being written: kept for later
		}
		if err != nil {
			return fmt.Errorf("logs: read %s: %w", lf.f.Name(), err)
		}
		var e Entry
		if jerr := json.Unmarshal(lf.pending, &e); jerr != nil {
			return fmt.Errorf("logs: %s: line %q: %w: %w", lf.f.Name(), lf.pending, jerr, errdefs.ErrDataLoss)
		}
		lf.pending = lf.pending[:0]
		r.given++
		if err := r.fn(e); err != nil {
			return err
		}
	}
}

// rotated returns the names of the rotated files, oldest first.
func (r *reader) rotated() []string {
	var names []string
	for i := 1; ; i++ {
		name := currentName + "." + strconv.Itoa(i)
		if _, err := os.Lstat(filepath.Join(r.dir, name)); err != nil {
			break
		}
		names = append([]string{name}, names...)
	}
	return names
}

// readAll gives every entry of the rotated files and json.log, and
// returns json.log open at its end (nil when there is none yet).
func (r *reader) readAll() (*file, error) {
	unlock, err := lockDir(r.dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// json.log first: a rotation while the older files are read then
	// shows as a changed inode, which follow handles.
	cur, err := r.open(currentName)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("logs: %w", err)
	}
	for _, name := range r.rotated() {
		lf, err := r.open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("logs: %w", err)
		}
		if cur != nil && lf.ino == cur.ino {
			lf.f.Close()
			continue
		}
		err = r.drain(lf)
		lf.f.Close()
		if err != nil {
			return nil, err
		}
	}
	if cur != nil {
		if err := r.drain(cur); err != nil {
			cur.f.Close()
			return nil, err
		}
	}
	return cur, nil
}

// follow gives the entries written after cur's end until the log is done.
func (r *reader) follow(cur *file, opts ReadOptions) error {
	// quietPolls is how long a stopped container's log must stay still.
	const quietPolls = 5
	quiet := 0
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	for {
		_, derr := os.Stat(filepath.Join(r.dir, doneName))
		done := derr == nil
		if cur == nil {
			// No log yet when we last looked: everything there is now
			// is new, the files it has rotated already included.
			lf, err := r.readAll()
			if err != nil {
				return err
			}
			cur = lf
		}
		before := r.given
		if cur != nil {
			if err := r.drain(cur); err != nil {
				return err
			}
			next, err := r.afterRotation(cur)
			if err != nil {
				return err
			}
			if next != nil {
				cur.f.Close()
				cur = next
				continue // read the new json.log before deciding
			}
		}
		if done {
			return nil
		}
		if r.given != before {
			quiet = 0
		} else if opts.Stopped != nil && opts.Stopped() {
			if quiet++; quiet >= quietPolls {
				return nil
			}
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(opts.Poll):
		}
	}
}

// afterRotation returns json.log open when it is no longer cur's file,
// having given the entries of the files rotated between the two (nil when
// cur is still json.log).
func (r *reader) afterRotation(cur *file) (*file, error) {
	unlock, err := lockDir(r.dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var st syscall.Stat_t
	err = syscall.Stat(filepath.Join(r.dir, currentName), &st)
	if err == nil && st.Ino == cur.ino {
		return nil, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("logs: %w", err)
	}
	// What was written to cur between the caller's drain and the
	// rotation.
	if err := r.drain(cur); err != nil {
		return nil, err
	}
	next, err := r.open(currentName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // between rename and create: next poll
	}
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	// cur is now json.log.k (or removed, with one file): the files
	// json.log.k-1 … json.log.1 came after it, and before next.
	rot := r.rotated()
	k := len(rot)
	for i, name := range rot {
		var s syscall.Stat_t
		if syscall.Stat(filepath.Join(r.dir, name), &s) == nil && s.Ino == cur.ino {
			k = i
		}
	}
	if k < len(rot) {
		for _, name := range rot[k+1:] {
			lf, err := r.open(name)
			if err != nil {
				continue
			}
			if lf.ino == next.ino {
				lf.f.Close()
				continue // rotated once more meanwhile: read as next
			}
			err = r.drain(lf)
			lf.f.Close()
			if err != nil {
				next.f.Close()
				return nil, err
			}
		}
	}
	return next, nil
}
