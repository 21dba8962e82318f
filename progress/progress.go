// Package progress draws what the pull, push, import and export pipelines are
// doing. The pipelines never draw: they send an Update per item (a blob by its
// digest, or a reference being resolved) to a Sink, and a Printer turns the
// stream into one of three displays.
//
// TTY, for a person at a terminal: one line per item in the order first seen,
// redrawn in place at most ten times a second and cut to the terminal's
// width, then a summary:
//
//	docker.io/library/alpine:3.20 done        0.3s
//	0123456789ab index    done        1.6 KiB 0.1s
//	89abcdef0123 layer    downloading [==>       ] 10.0 MiB/40.0 MiB 5.0 MiB/s 2.0s
//	456789abcdef layer    downloading 512.0 KiB 256.0 KiB/s 2.0s
//	fedcba987654 config   exists      1.2 KiB
//	555555555555 layer    waiting
//
// Plain, for logs and pipes: a line when an item's status changes, one every
// five seconds for each item still moving bytes, then the summary:
//
//	layer sha256:89abcdef0123: downloading 40.0 MiB
//	layer sha256:89abcdef0123: downloading 20.0 MiB/40.0 MiB (4.0 MiB/s)
//	layer sha256:89abcdef0123: done 40.0 MiB in 11.0s
//	5 blobs, 47.5 MiB in 13.0s (3.7 MiB/s)
//
// Quiet draws nothing. Whatever the mode, the caller of Update never writes:
// the Printer's own goroutine does, so a slow terminal never stalls a
// download, and Update costs a lock and a map lookup. A Printer keeps a few
// hundred bytes per item and nothing per Update.
//
// Lifecycle:
//
//	p := progress.New(os.Stderr, mode) // mode from ParseMode(--progress)
//	err := fetch(ctx, p)               // anything that reports to a Sink
//	p.Close(err)                       // final state of every item, summary
package progress

import (
	"fmt"
	"io"

	"github.com/containerd/errdefs"
)

// Status is where an item is in its pipeline.
type Status string

// Statuses, in the order an item usually goes through them.
const (
	Resolving   Status = "resolving"
	Waiting     Status = "waiting"
	Downloading Status = "downloading"
	Uploading   Status = "uploading" // push's Downloading
	Unpacking   Status = "unpacking"
	Exists      Status = "exists"  // already in the store or on the registry: skipped
	Mounted     Status = "mounted" // push: mounted from another repository
	Done        Status = "done"
	Failed      Status = "failed"
)

// active reports whether an item in s moves bytes: it gets a bar and a rate.
func (s Status) active() bool {
	return s == Downloading || s == Uploading || s == Unpacking
}

// final reports whether s ends an item.
func (s Status) final() bool {
	return s == Exists || s == Mounted || s == Done || s == Failed
}

// Update is the news about one item.
//
// Fields left zero keep what the item had: Kind, Total and Err; a Status of
// "" keeps the status (a new item starts Waiting). Current is taken as given
// while the status is Downloading, Uploading or Unpacking, and kept when zero
// otherwise; entering one of these statuses restarts the item's rate.
type Update struct {
	ID      string // stable key: a digest "sha256:…" or a reference
	Kind    string // "index", "manifest", "config", "layer"
	Status  Status
	Current int64 // bytes so far
	Total   int64 // bytes expected; 0 is unknown
	Err     error // why, with Failed
}

// Sink receives Updates. Implementations are safe for concurrent use and
// cheap: pipelines call Update for every read of a few hundred KiB.
type Sink interface {
	Update(Update)
}

// Discard is a Sink that drops every Update.
var Discard Sink = discard{}

type discard struct{}

func (discard) Update(Update) {}

// Reader reports the bytes read through it to a Sink.
type Reader struct {
	r    io.Reader
	sink Sink
	u    Update
}

// NewReader returns a Reader that sends u to sink after every read, with
// u.Current grown by the bytes read. Set u.Current to the offset a resumed
// transfer starts from.
func NewReader(r io.Reader, sink Sink, u Update) *Reader {
	return &Reader{r: r, sink: sink, u: u}
}

// Read reads from the underlying reader and reports its progress.
func (r *Reader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.u.Current += int64(n)
		r.sink.Update(r.u)
	}
	return n, err
}

// Mode chooses the display.
type Mode int

// Modes. Auto is TTY on a terminal whose TERM is not "dumb", else Plain.
const (
	Auto Mode = iota
	TTY
	Plain
	Quiet
)

var modeNames = [...]string{Auto: "auto", TTY: "tty", Plain: "plain", Quiet: "quiet"}

// ParseMode reads a mode by name: auto, tty, plain or quiet. Other names
// return errdefs.ErrInvalidArgument.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Auto, fmt.Errorf("progress mode %q: %w: want auto, tty, plain or quiet", s, errdefs.ErrInvalidArgument)
}

// String returns the mode's name, as ParseMode reads it.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Set parses s into m, so that a *Mode is a command-line flag value.
func (m *Mode) Set(s string) error {
	v, err := ParseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Type names the flag value's type in help text.
func (m *Mode) Type() string { return "mode" }

// Counter passes reads of R through and reports the bytes read as progress
// of layer ID (Current counts from N), at most every 256 KiB and at the
// end (Reader reports every read): pull's downloads and the unpacker's
// applies from the store.
type Counter struct {
	R      io.Reader
	N      int64
	ID     string
	Total  int64
	Sink   Sink
	Status Status
	last   int64
}

func (c *Counter) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	if c.N-c.last >= 256<<10 || (err != nil && c.N != c.last) {
		c.last = c.N
		c.Sink.Update(Update{ID: c.ID, Kind: "layer", Status: c.Status, Current: c.N, Total: c.Total})
	}
	return n, err
}
