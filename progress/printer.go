package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

const (
	// tick is how often the drawing goroutine wakes: at most ten frames a
	// second in TTY mode, queued lines written within 100 ms in Plain mode.
	tick = 100 * time.Millisecond
	// plainEvery is how often Plain mode repeats the progress of an item
	// that is still moving bytes.
	plainEvery = 5 * time.Second
	// maxQueue bounds the status lines Plain mode holds while its writer is
	// slow; beyond it, an item's latest status is written instead of each.
	maxQueue = 1024
	// defaultCols is the width when the writer is not a terminal.
	defaultCols = 80
)

// Printer is a Sink that draws the Updates it receives on a writer. Its
// Update is safe for concurrent use; Close ends it.
type Printer struct {
	w    io.Writer
	mode Mode
	now  func() time.Time
	size func() (cols, rows int) // rows 0: unknown
	t0   time.Time

	stop, done chan struct{} // the drawing goroutine's; nil without one
	closeOnce  sync.Once

	mu     sync.Mutex
	closed bool
	items  map[string]*item
	order  []*item // first seen first
	gen    uint64  // counts Updates, so that an idle TTY is not redrawn
	queue  []event // Plain: status changes not yet written
	lost   bool    // Plain: some item has dirty set

	// Used only by the drawing goroutine, then by Close once it has stopped.
	buf       []byte
	drawn     int    // TTY: lines of the live area on screen
	flushed   int    // TTY: items scrolled out of the live area for good
	drawnGen  uint64 // TTY: gen of the frame on screen
	drawnCols int    // TTY: terminal size the frame on screen was made for
	drawnRows int
	werr      error // the writer failed: draw nothing more
}

var _ Sink = (*Printer)(nil)

// item is what a Printer knows of one ID.
type item struct {
	id, kind    string // sanitized
	short       string // TTY: 12 hex digits of a digest, else the ID
	long        string // Plain: "sha256:" and 12 hex digits, else the ID
	blob        bool   // the ID is a digest
	status      Status
	current     int64
	total       int64
	transferred int64 // most bytes Current reached while downloading or uploading
	err         error
	seen        time.Time // first Update
	started     time.Time // first entered an active status
	ended       time.Time // entered a final status
	lastLine    time.Time // Plain: last line written about it
	dirty       bool      // Plain: a status change was dropped from the queue
	rate        window
}

// event is a status change, as Plain mode writes it.
type event struct {
	it          *item
	status      Status
	current     int64
	total       int64
	transferred int64
	err         error
	took        time.Duration
}

// New returns a Printer drawing on w in mode. Auto picks TTY when w is an
// *os.File on a terminal and $TERM is not "dumb", else Plain. In TTY mode
// the width comes from the terminal, 80 columns when w is none.
func New(w io.Writer, mode Mode) *Printer {
	f, _ := w.(*os.File)
	if mode == Auto {
		mode = Plain
		if f != nil && isTerminal(f) && os.Getenv("TERM") != "dumb" {
			mode = TTY
		}
	}
	size := func() (int, int) { return defaultCols, 0 }
	if f != nil {
		size = func() (int, int) { return terminalSize(f) }
	}
	p := newPrinter(w, mode, time.Now, size)
	if p.mode != Quiet {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.run()
	}
	return p
}

// newPrinter returns a Printer without its drawing goroutine; tests call
// draw themselves.
func newPrinter(w io.Writer, mode Mode, now func() time.Time, size func() (int, int)) *Printer {
	if mode != TTY && mode != Quiet {
		mode = Plain
	}
	return &Printer{w: w, mode: mode, now: now, size: size, t0: now(), items: make(map[string]*item)}
}

// Mode returns the display the Printer chose: TTY, Plain or Quiet.
func (p *Printer) Mode() Mode { return p.mode }

// Update records u; the drawing goroutine shows it. Updates after Close and
// Updates without an ID are dropped.
func (p *Printer) Update(u Update) {
	if p.mode == Quiet || u.ID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.gen++
	var now time.Time // read only when needed: most Updates just count bytes
	it := p.items[u.ID]
	if it == nil {
		now = p.now()
		it = newItem(u.ID, now)
		p.items[u.ID] = it
		p.order = append(p.order, it)
	}
	if u.Kind != "" && u.Kind != it.kind {
		it.kind = sanitize(u.Kind)
	}
	if u.Total > 0 {
		it.total = u.Total
	}
	if u.Err != nil {
		it.err = u.Err
	}
	status := u.Status
	if status == "" {
		status = it.status
		if status == "" {
			status = Waiting
		}
	}
	changed := status != it.status
	if status.active() || u.Current > 0 {
		it.current = u.Current
	}
	if changed {
		if now.IsZero() {
			now = p.now()
		}
		it.status = status
		if status.active() {
			if it.started.IsZero() {
				it.started = now
			}
			it.rate.reset(now, it.current)
		}
		if status.final() {
			it.ended = now
		} else {
			it.ended = time.Time{}
		}
	}
	if (status == Downloading || status == Uploading) && it.current > it.transferred {
		it.transferred = it.current
	}
	if changed && p.mode == Plain {
		it.lastLine = now
		if len(p.queue) < maxQueue {
			p.queue = append(p.queue, it.event(now))
		} else {
			it.dirty, p.lost = true, true
		}
	}
}

func newItem(id string, now time.Time) *item {
	it := &item{id: sanitize(id), seen: now, lastLine: now}
	it.short, it.long = it.id, it.id
	if algorithm, encoded, ok := splitDigest(it.id); ok {
		it.blob = true
		it.short = encoded[:12]
		it.long = algorithm + ":" + encoded[:12]
	}
	return it
}

// since is when the item's clock starts: when it began moving bytes, or
// when it was first seen if it never did.
func (it *item) since() time.Time {
	if !it.started.IsZero() {
		return it.started
	}
	return it.seen
}

// elapsed is how long the item has taken so far, or took.
func (it *item) elapsed(now time.Time) time.Duration {
	if it.status.final() {
		return it.ended.Sub(it.since())
	}
	return now.Sub(it.since())
}

// size is the byte count worth showing once an item is over.
func (it *item) size() int64 {
	switch {
	case it.transferred > 0:
		return it.transferred
	case it.total > 0:
		return it.total
	}
	return it.current
}

func (it *item) event(now time.Time) event {
	return event{it: it, status: it.status, current: it.current, total: it.total,
		transferred: it.transferred, err: it.err, took: it.elapsed(now)}
}

// Close writes the final state of every item and a summary line, then stops
// the Printer; err is the operation's outcome and marks the summary
// incomplete. Close is idempotent.
func (p *Printer) Close(err error) {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		if p.stop != nil {
			close(p.stop)
			<-p.done
		}
		p.finish(err)
	})
}

func (p *Printer) run() {
	defer close(p.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

// draw writes what changed since the last call: a TTY frame, or Plain lines.
func (p *Printer) draw() {
	cols, rows := p.size()
	p.mu.Lock()
	now := p.now()
	for _, it := range p.order[p.flushed:] {
		if it.status.active() {
			it.rate.add(now, it.current)
		}
	}
	buf := p.buf[:0]
	if p.mode == TTY {
		buf = p.frame(buf, now, cols, rows, false)
	} else {
		buf = p.plainLines(buf, now)
	}
	p.mu.Unlock()
	p.write(buf)
}

// finish writes the last frame or lines and the summary.
func (p *Printer) finish(err error) {
	if p.mode == Quiet {
		return
	}
	cols, _ := p.size()
	p.mu.Lock()
	now := p.now()
	buf := p.buf[:0]
	if p.mode == TTY {
		buf = p.frame(buf, now, cols, 0, true)
	} else {
		buf = p.plainLines(buf, now)
	}
	start := len(buf)
	buf = append(buf, p.summary(now, err)...)
	if p.mode == TTY {
		buf = truncate(buf, start, cols)
	}
	buf = append(buf, '\n')
	p.mu.Unlock()
	p.write(buf)
}

func (p *Printer) write(buf []byte) {
	p.buf = buf
	if len(buf) == 0 || p.werr != nil {
		return
	}
	_, p.werr = p.w.Write(buf)
}

// summary is "<N> blobs, <bytes> in <duration> (<rate>)", with the failures.
func (p *Printer) summary(now time.Time, err error) string {
	var blobs, failed int
	var bytes int64
	for _, it := range p.order {
		if it.blob {
			blobs++
		}
		if it.status == Failed {
			failed++
		}
		bytes += it.transferred
	}
	noun := "blobs"
	if blobs == 1 {
		noun = "blob"
	}
	d := now.Sub(p.t0)
	s := fmt.Sprintf("%d %s, %s in %s (%s/s)", blobs, noun, human(bytes), seconds(d), human(perSecond(bytes, d)))
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	if err != nil {
		s += ", incomplete"
	}
	return s
}

// window is an item's recent (time, bytes) samples, for a rate averaged over
// the last few seconds. Its size is fixed: no allocation per Update.
type window struct {
	at   [16]time.Time
	n    [16]int64
	next int
	len  int
}

// sampleEvery spaces samples so that the window spans about four seconds.
const sampleEvery = 250 * time.Millisecond

func (w *window) reset(at time.Time, n int64) {
	w.next, w.len = 0, 0
	w.push(at, n)
}

func (w *window) add(at time.Time, n int64) {
	if w.len > 0 && at.Sub(w.at[(w.next+len(w.at)-1)%len(w.at)]) < sampleEvery {
		return
	}
	w.push(at, n)
}

func (w *window) push(at time.Time, n int64) {
	w.at[w.next], w.n[w.next] = at, n
	w.next = (w.next + 1) % len(w.at)
	if w.len < len(w.at) {
		w.len++
	}
}

// rate is bytes per second from the oldest sample to (at, n).
func (w *window) rate(at time.Time, n int64) int64 {
	if w.len == 0 {
		return 0
	}
	old := (w.next - w.len + len(w.at)) % len(w.at)
	return perSecond(n-w.n[old], at.Sub(w.at[old]))
}
