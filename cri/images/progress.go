package images

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	transfertypes "github.com/containerd/containerd/api/types/transfer"

	"github.com/strata-oci/strata/progress"
)

// TopicPullProgress is where pull progress is published: one event per
// blob when its status changes, and at most once a second while it moves
// bytes. The event is containerd's transfer progress message
// (containerd.types.transfer.Progress): Event the status, Name the blob's
// digest (or the reference while it resolves), Parents the reference,
// Progress and Total bytes.
const TopicPullProgress = "/images/pull/progress"

// publishEvery bounds the byte progress events of one blob.
const publishEvery = time.Second

// pullWatch is one pull's progress sink: it counts the bytes the pull
// moves, cancels the pull when they come slower than the minimum rate for
// the progress timeout, and publishes and counts the progress.
type pullWatch struct {
	s      *Service
	ref    string
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	ended  chan struct{}

	mu        sync.Mutex
	bytes     int64            // moved so far, all blobs
	current   map[string]int64 // per blob and status: the last Current seen
	status    map[string]progress.Status
	published map[string]time.Time
	stalled   error
}

// watch starts watching a pull of ref that runs on the returned watch's
// ctx; stop ends it.
func (s *Service) watch(ctx context.Context, ref string) *pullWatch {
	w := &pullWatch{s: s, ref: ref, done: make(chan struct{}), ended: make(chan struct{}),
		current: map[string]int64{}, status: map[string]progress.Status{}, published: map[string]time.Time{}}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	s.metrics.start(ref)
	go w.run()
	return w
}

// Update takes the pipeline's news of one blob.
func (w *pullWatch) Update(u progress.Update) {
	w.mu.Lock()
	key := string(u.Status) + " " + u.ID
	var delta int64
	if u.Current > w.current[key] {
		delta = u.Current - w.current[key]
		w.current[key] = u.Current
		w.bytes += delta
	}
	changed := u.Status != "" && w.status[u.ID] != u.Status
	if changed {
		w.status[u.ID] = u.Status
	}
	now := time.Now()
	publish := changed || (delta > 0 && now.Sub(w.published[u.ID]) >= publishEvery)
	if publish {
		w.published[u.ID] = now
	}
	status := w.status[u.ID]
	w.mu.Unlock()
	if u.Status == progress.Downloading && delta > 0 {
		w.s.metrics.add(w.ref, delta)
	}
	if publish && w.s.events != nil {
		ev := &transfertypes.Progress{Event: string(status), Name: u.ID, Parents: []string{w.ref}, Progress: u.Current, Total: u.Total}
		if err := w.s.events.Publish(context.WithoutCancel(w.ctx), TopicPullProgress, ev); err != nil {
			w.s.log.Debug("pull progress not published", "ref", w.ref, "error", err)
		}
	}
}

// moved is the bytes the pull has moved so far.
func (w *pullWatch) moved() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes
}

// run checks the pull's rate until stop: a pull that moved fewer than
// PullMinRate×PullProgressTimeout bytes over the last PullProgressTimeout
// (and none at all with a zero rate) is cancelled.
func (w *pullWatch) run() {
	defer close(w.ended)
	timeout := w.s.cfg.PullProgressTimeout
	if timeout < 0 {
		<-w.done
		return
	}
	tick := time.NewTicker(max(timeout/8, time.Millisecond))
	defer tick.Stop()
	w.mu.Lock()
	mark, markBytes := time.Now(), w.bytes
	w.mu.Unlock()
	for {
		select {
		case <-w.done:
			return
		case <-w.ctx.Done():
			return
		case now := <-tick.C:
			w.mu.Lock()
			bytes := w.bytes
			w.mu.Unlock()
			if progressed(bytes-markBytes, w.s.cfg.PullMinRate, timeout) {
				mark, markBytes = now, bytes
				continue
			}
			if now.Sub(mark) >= timeout {
				err := fmt.Errorf("no progress: %d bytes in %s, under the minimum of %d bytes/s (image_pull_progress_timeout): %w",
					bytes-markBytes, timeout, w.s.cfg.PullMinRate, context.DeadlineExceeded)
				w.mu.Lock()
				w.stalled = err
				w.mu.Unlock()
				w.cancel(err)
				return
			}
		}
	}
}

// progressed reports whether n bytes are progress over a window of
// timeout at a minimum rate (bytes per second): at least one byte, and at
// least rate×timeout.
func progressed(n, rate int64, timeout time.Duration) bool {
	return n > 0 && float64(n) >= float64(rate)*timeout.Seconds()
}

// stop ends the watch of a pull that returned err, and returns the
// watchdog's error if it is what ended the pull.
func (w *pullWatch) stop(err error) error {
	close(w.done)
	<-w.ended
	w.cancel(nil)
	w.mu.Lock()
	stalled := w.stalled
	w.mu.Unlock()
	switch {
	case err == nil:
		w.s.metrics.finish(w.ref, "done")
		return nil
	case stalled != nil:
		w.s.metrics.finish(w.ref, "stalled")
		return stalled
	}
	w.s.metrics.finish(w.ref, "failed")
	return nil
}

// pullMetrics counts the CRI's pulls for the daemon's metrics endpoint.
type pullMetrics struct {
	mu      sync.Mutex
	active  map[string]*activePull // by reference being pulled
	pulls   map[string]uint64
	bytes   uint64
	running int
}

// activePull is what the pulls of one reference running now moved; two
// pulls of one reference (kubelet and crictl) share it until both end.
type activePull struct {
	pulls int
	bytes int64
}

func (m *pullMetrics) start(ref string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == nil {
		m.active, m.pulls = map[string]*activePull{}, map[string]uint64{}
	}
	m.running++
	a := m.active[ref]
	if a == nil {
		a = &activePull{}
		m.active[ref] = a
	}
	a.pulls++
}

func (m *pullMetrics) add(ref string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active[ref].bytes += n
	m.bytes += uint64(n)
}

func (m *pullMetrics) finish(ref, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running--
	m.pulls[outcome]++
	a := m.active[ref]
	if a.pulls--; a.pulls == 0 {
		delete(m.active, ref)
	}
}

// WriteMetrics writes the pull metrics in Prometheus' text format.
func (s *Service) WriteMetrics(w io.Writer) {
	m := &s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP strata_cri_pulls_in_progress CRI image pulls running now.")
	fmt.Fprintln(w, "# TYPE strata_cri_pulls_in_progress gauge")
	fmt.Fprintf(w, "strata_cri_pulls_in_progress %d\n", m.running)
	fmt.Fprintln(w, "# HELP strata_cri_pull_bytes Bytes downloaded so far by each CRI pull running now.")
	fmt.Fprintln(w, "# TYPE strata_cri_pull_bytes gauge")
	for _, ref := range slices.Sorted(maps.Keys(m.active)) {
		fmt.Fprintf(w, "strata_cri_pull_bytes{image=%q} %d\n", ref, m.active[ref].bytes)
	}
	fmt.Fprintln(w, "# HELP strata_cri_pull_bytes_total Bytes downloaded by CRI pulls.")
	fmt.Fprintln(w, "# TYPE strata_cri_pull_bytes_total counter")
	fmt.Fprintf(w, "strata_cri_pull_bytes_total %d\n", m.bytes)
	fmt.Fprintln(w, "# HELP strata_cri_pulls_total CRI image pulls ended, by outcome (done, failed, stalled).")
	fmt.Fprintln(w, "# TYPE strata_cri_pulls_total counter")
	for _, o := range slices.Sorted(maps.Keys(m.pulls)) {
		fmt.Fprintf(w, "strata_cri_pulls_total{outcome=%q} %d\n", o, m.pulls[o])
	}
}
