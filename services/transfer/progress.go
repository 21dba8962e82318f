package transfer

import (
	"strings"
	"sync"
	"time"

	transfertypes "github.com/containerd/containerd/api/types/transfer"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/services/streaming"
)

// progressStream is a progress.Sink that sends a pipeline's updates to the
// client as containerd's Progress messages: one per item (a blob, named
// "<kind>-<digest>" as ctr shortens it, or the reference resolved) with
// its whole state, since ctr replaces an item's line with each message.
// Updates are coalesced and sent at most every progressInterval by one
// goroutine, so a pipeline never waits for the client.
type progressStream struct {
	st    *streaming.Stream
	c     *jobs.Coalescer
	items map[string]*item // by update ID; the sender's own

	extra chan *transfertypes.Progress
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

type item struct {
	kind    string
	status  progress.Status
	current int64
	total   int64
	event   string
}

func newProgress(st *streaming.Stream) *progressStream {
	p := &progressStream{st: st, c: jobs.NewCoalescer(), items: map[string]*item{},
		extra: make(chan *transfertypes.Progress, 16), stop: make(chan struct{}), done: make(chan struct{})}
	go p.sender()
	return p
}

// Update implements progress.Sink.
func (p *progressStream) Update(u progress.Update) { p.c.Update(u) }

func (p *progressStream) sender() {
	defer close(p.done)
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.flush()
		case m := <-p.extra:
			p.flush()
			p.st.Send(m)
		case <-p.stop:
			for len(p.extra) > 0 { // no send runs any more
				p.flush()
				p.st.Send(<-p.extra)
			}
			p.flush()
			return
		case <-p.st.Done():
			return
		}
	}
}

// flush sends what changed since the last flush.
func (p *progressStream) flush() {
	for _, u := range p.c.Take() {
		it, ok := p.items[u.ID]
		if !ok {
			it = &item{status: progress.Waiting}
			p.items[u.ID] = it
		}
		if u.Kind != "" {
			it.kind = u.Kind
		}
		prev := it.status
		if u.Status != "" {
			it.status = u.Status
		}
		switch it.status {
		case progress.Downloading, progress.Uploading, progress.Unpacking:
			it.current = u.Current
		default:
			if u.Current != 0 {
				it.current = u.Current
			}
		}
		if u.Total != 0 {
			it.total = u.Total
		}
		it.event = event(prev, it.status, it.event)
		name := u.ID
		if it.kind != "" && strings.Contains(u.ID, ":") && !strings.Contains(u.ID, "/") {
			name = it.kind + "-" + u.ID
		}
		cur := it.current
		if it.event == "complete" || it.event == "extracted" {
			cur = max(cur, it.total)
		}
		if p.st.Send(&transfertypes.Progress{Event: it.event, Name: name, Progress: cur, Total: it.total}) != nil {
			return
		}
	}
}

// event names a status in ctr's words (it draws bars for downloading,
// uploading and extracting, full ones for complete and extracted).
func event(prev, s progress.Status, last string) string {
	switch s {
	case progress.Unpacking:
		return "extracting"
	case progress.Exists:
		return "already exists"
	case progress.Done:
		if prev == progress.Unpacking || last == "extracting" || last == "extracted" {
			return "extracted"
		}
		return "complete"
	}
	return string(s)
}

// send queues m (a status line, or an event that is no pipeline item's)
// after the updates reported so far.
func (p *progressStream) send(m *transfertypes.Progress) {
	if p == nil {
		return // a transfer without a progress stream
	}
	select {
	case p.extra <- m:
	case <-p.st.Done():
	}
}

// close sends what is pending and ends the sender; the stream itself is
// closed by its owner. Every send must have returned.
func (p *progressStream) close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
