package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
)

// registerJobs serves strata's jobs stream (jobs.ServiceName) over the
// server's runner and lists it for introspection.
func (s *Server) registerJobs() {
	js := &jobService{s: s, runner: s.runner}
	s.GRPC().RegisterService(&grpc.ServiceDesc{
		ServiceName: jobs.ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Run",
			Handler:       func(_ any, stream grpc.ServerStream) error { return js.run(stream) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}, js)
	s.AddPlugin(Plugin{Type: "io.strata.grpc.v1", ID: "jobs", Requires: []string{"io.containerd.metadata.v1"},
		Capabilities: []string{"pull", "push", "import", "export", "gc", "fsck"}})
}

// jobService runs jobs.Requests for clients: strata's CLI in client mode.
// A job runs on a context of its own: a client that goes away (killed,
// its terminal closed) leaves it running to the end, one that sends Cancel
// stops it. Server.Stop drains jobs like calls, and cancels those still
// running when the grace period ends.
type jobService struct {
	s      *Server
	runner *jobs.Runner
}

// jobConn is one client's stream, as a job sees it: what it sends goes
// through one goroutine (a gRPC stream takes one sender at a time), and
// everything stops reaching the client once it has gone.
type jobConn struct {
	stream   grpc.ServerStream
	progress *jobs.Coalescer
	frames   chan jobs.ServerFrame
	done     chan struct{} // closed when the job has ended: nothing more is sent
	gone     chan struct{} // closed when the client cannot be reached
	goneOnce sync.Once

	mu        sync.Mutex
	questions map[string]*question // by host; answers are kept for the job's life
}

func (c *jobConn) markGone() { c.goneOnce.Do(func() { close(c.gone) }) }

// send queues f for the client; false once the client is gone, the job
// has ended or ctx is done.
func (c *jobConn) send(ctx context.Context, f jobs.ServerFrame) bool {
	select {
	case c.frames <- f:
		return true
	case <-c.gone:
	case <-c.done:
	case <-ctx.Done():
	}
	return false
}

// sender sends frames and progress until the job is done, then what is
// left of both.
func (c *jobConn) sender(sent chan<- struct{}) {
	defer close(sent)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	flush := func() {
		if ups := c.progress.Take(); len(ups) > 0 {
			if c.stream.SendMsg(&jobs.ServerFrame{Progress: ups}) != nil {
				c.markGone()
			}
		}
	}
	sendFrame := func(f jobs.ServerFrame) {
		flush() // progress first: it happened before f
		if err := c.stream.SendMsg(&f); err != nil {
			c.markGone()
		}
	}
	for {
		select {
		case f := <-c.frames:
			sendFrame(f)
		case <-tick.C:
			// Progress at most ten times a second: a pull reports
			// every read, a terminal shows a few frames a second.
			flush()
		case <-c.done:
			for {
				select {
				case f := <-c.frames:
					sendFrame(f)
				default:
					flush()
					return
				}
			}
		}
	}
}

// question is a credential question in flight; done closes when answered.
type question struct {
	done   chan struct{}
	answer jobs.CredentialAnswer
}

// credentials asks the client for host's credentials, once per host: the
// registry client may ask for one host from several fetches at once, and
// again after the client has gone (a token to refresh).
func (c *jobConn) credentials(ctx context.Context, host string) (string, string, error) {
	c.mu.Lock()
	q, asked := c.questions[host]
	if !asked {
		q = &question{done: make(chan struct{})}
		c.questions[host] = q
	}
	c.mu.Unlock()
	if !asked && !c.send(ctx, jobs.ServerFrame{Credential: host}) {
		// Not asked after all: the next call may ask again.
		c.mu.Lock()
		delete(c.questions, host)
		c.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return "", "", err
		}
		return "", "", nil // no client to ask: anonymous
	}
	select {
	case <-q.done:
	case <-c.gone:
		select {
		case <-q.done: // answered before it went
		default:
			return "", "", nil
		}
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
	if q.answer.Error != "" {
		return "", "", fmt.Errorf("credentials for %s: %s", host, q.answer.Error)
	}
	return q.answer.User, q.answer.Secret, nil
}

func (c *jobConn) answer(a jobs.CredentialAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.questions[a.Host]; ok {
		select {
		case <-q.done: // answered already
		default:
			q.answer = a
			close(q.done)
		}
	}
}

// writer sends export data to the client; it fails once the client is gone.
type jobWriter struct {
	ctx context.Context
	c   *jobConn
}

func (w jobWriter) Write(p []byte) (int, error) {
	// Frames keep well under the message limit; the buffer is copied
	// because the caller reuses it.
	const chunk = 1 << 20
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		if !w.c.send(w.ctx, jobs.ServerFrame{Data: append([]byte(nil), p[:k]...)}) {
			return n, fmt.Errorf("export stream: the client went away: %w", errdefs.ErrUnavailable)
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func (js *jobService) run(stream grpc.ServerStream) error {
	var first jobs.ClientFrame
	if err := stream.RecvMsg(&first); err != nil {
		return err
	}
	if first.Start == nil {
		return fmt.Errorf("jobs: the first message must start a job: %w", errdefs.ErrInvalidArgument)
	}
	req := *first.Start
	kind := req.Kind()
	if kind == "" {
		return fmt.Errorf("job request: want exactly one of pull, push, import, export, gc, fsck, info: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkPaths(req, peercred.UID(stream.Context())); err != nil {
		return err
	}
	if err := checkRepair(req, peercred.UID(stream.Context())); err != nil {
		return err
	}
	ctx, cancel, release, err := js.s.startJob(stream.Context(), req.Long())
	if err != nil {
		return err
	}
	defer release()
	defer cancel()

	c := &jobConn{stream: stream, progress: jobs.NewCoalescer(), frames: make(chan jobs.ServerFrame, 16),
		done: make(chan struct{}), gone: make(chan struct{}), questions: map[string]*question{}}
	sent := make(chan struct{})
	go c.sender(sent)
	log := js.s.Log.With("job", kind)
	env := jobs.Env{Progress: c.progress, Credentials: c.credentials, Logger: log, UserAgent: "strata/" + js.s.cfg.Version,
		Warn: func(msg string) { c.send(ctx, jobs.ServerFrame{Warn: msg}) }}
	var pr *io.PipeReader
	var pw *io.PipeWriter
	if req.Import != nil && req.Import.Path == "" {
		pr, pw = io.Pipe()
		env.Input = pr
		// A cancelled job stops reading at once, not at the next tar
		// entry (the importer may be waiting inside one for data).
		w := pw // the receiver's copy becomes nil when it gives up
		stopPipe := context.AfterFunc(ctx, func() { w.CloseWithError(context.Cause(ctx)) })
		defer stopPipe()
	}
	if req.Export != nil && req.Export.Path == "" {
		env.Output = jobWriter{ctx, c}
	}

	// The receiver takes data, answers and Cancel until the client stops
	// sending or goes away.
	go func() {
		eof := false
		for {
			var f jobs.ClientFrame
			if err := stream.RecvMsg(&f); err != nil {
				if pw != nil && !eof {
					pw.CloseWithError(fmt.Errorf("import stream: the client went away: %w", errdefs.ErrUnavailable))
				}
				if !errors.Is(err, io.EOF) {
					c.markGone()
					if req.Long() && ctx.Err() == nil {
						log.Info("client went away; the job goes on")
					}
				}
				return
			}
			switch {
			case f.Cancel:
				log.Info("cancelled by the client")
				cancel()
			case f.Credential != nil:
				c.answer(*f.Credential)
			case pw != nil && len(f.Data) > 0:
				if _, err := pw.Write(f.Data); err != nil {
					pw = nil // the job stopped reading; drop the rest
				}
			}
			if f.EOF && pw != nil && !eof {
				eof = true
				pw.Close()
			}
		}
	}()

	start := time.Now()
	res, err := js.runner.Run(ctx, req, env)
	if pr != nil {
		pr.Close() // the receiver drops what data still comes
	}
	if req.Long() {
		if err != nil {
			log.Info("job failed", "duration", time.Since(start), "error", err)
		} else {
			log.Info("job done", "duration", time.Since(start), "images", res.Images)
		}
	}
	if err == nil {
		// Done is done: a Cancel that came too late, or Stop's grace
		// ending now, must not lose the result or its events.
		after := context.WithoutCancel(ctx)
		if req.Pull != nil || req.Import != nil {
			js.publishImages(after, res.Images)
		}
		if res.Fsck != nil {
			js.publishRepairs(after, res.Fsck.Problems)
		}
		c.send(after, jobs.ServerFrame{Result: &res})
	}
	close(c.done)
	<-sent
	return err
}

// idleFree is how long the daemon stays without jobs before it returns
// their memory to the OS.
const idleFree = 5 * time.Second

// startJob returns the context a job runs on: the call's values (its
// namespace, its lease) without its cancellation, cancelled by the cancel
// returned and when Stop gives up waiting. release ends the job's hold on
// Stop.
func (s *Server) startJob(call context.Context, long bool) (context.Context, context.CancelFunc, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, nil, nil, fmt.Errorf("daemon is shutting down: %w", errdefs.ErrUnavailable)
	}
	s.jobs.Add(1)
	s.running++
	ctx, cancel := context.WithCancel(context.WithoutCancel(call))
	stop := context.AfterFunc(s.jobsCtx, cancel)
	release := func() {
		stop()
		s.mu.Lock()
		s.running--
		idle := s.running == 0
		s.mu.Unlock()
		if idle && long {
			// A pull's buffers (decompression windows, read-ahead,
			// batches of small files) are garbage now; once the
			// daemon has stayed idle a while, give their memory back
			// rather than sit on it until the next job (after a few
			// pulls an idle daemon otherwise keeps ~100 MiB resident).
			// Not at once: a full collection in the middle of the
			// next job of a script would slow it down.
			// The timer finds out whether the daemon is still idle;
			// a later long job restarts it.
			s.mu.Lock()
			if s.idleTimer != nil {
				s.idleTimer.Stop()
			}
			s.idleTimer = time.AfterFunc(idleFree, func() {
				s.mu.Lock()
				idle := s.running == 0
				s.mu.Unlock()
				if idle {
					debug.FreeOSMemory()
				}
			})
			s.mu.Unlock()
		}
		s.jobs.Done()
	}
	return ctx, cancel, release, nil
}

// publishImages tells event subscribers about the images a pull or an
// import recorded, as the images service does for its clients: a record
// made by the job is an ImageCreate, one it replaced an ImageUpdate.
func (js *jobService) publishImages(ctx context.Context, imgs []jobs.Image) {
	is := js.s.Store.DB.Images()
	for _, ji := range imgs {
		img, err := is.Get(ctx, ji.Name)
		if err != nil {
			continue // removed meanwhile: its delete was published
		}
		if img.CreatedAt.Equal(img.UpdatedAt) {
			events.Tell(ctx, js.s.events, js.s.Log, events.TopicImageCreate, &apievents.ImageCreate{Name: img.Name, Labels: img.Labels})
		} else {
			events.Tell(ctx, js.s.events, js.s.Log, events.TopicImageUpdate, &apievents.ImageUpdate{Name: img.Name, Labels: img.Labels})
		}
	}
}

// publishRepairs tells event subscribers about the images fsck --repair
// removed, as the images service does for its clients' deletes.
func (js *jobService) publishRepairs(ctx context.Context, problems []metadata.Problem) {
	for _, p := range problems {
		if p.Repaired && p.Kind == "bad-manifest" && p.Image != "" {
			events.Tell(namespaces.WithNamespace(ctx, p.Namespace), js.s.events, js.s.Log, events.TopicImageDelete, &apievents.ImageDelete{Name: p.Image})
		}
	}
}

// checkRepair refuses what removes others' data in every namespace
// unless its peer is root: fsck --repair (blobs, records and images), and
// a collection that drops partial downloads (gc --ingests, --min-free:
// other users' pulls would start over). A check without repair and a
// plain collection, which removes only what nothing holds, stay open to
// the socket's group.
func checkRepair(req jobs.Request, uid int64) error {
	if uid == 0 {
		return nil
	}
	if g := req.GC; g != nil && (g.Ingests || g.MinFree != "") {
		flag := "--ingests"
		if !g.Ingests {
			flag = "--min-free"
		}
		return fmt.Errorf("gc %s: it drops the partial downloads of every namespace, so the daemon does it for root only (%s); run it as root, or plain strata gc: %w",
			flag, peercred.Name(uid), errdefs.ErrPermissionDenied)
	}
	if req.Fsck == nil || !req.Fsck.Repair {
		return nil
	}
	return fmt.Errorf("fsck --repair: it removes blobs, records and images of every namespace, so the daemon does it for root only (%s); run it as root (sudo strata fsck --repair), or run strata fsck to check without repairing: %w",
		peercred.Name(uid), errdefs.ErrPermissionDenied)
}

// checkPaths refuses a request that names files for the daemon to open
// (an archive to import or export, a registry hosts directory) unless its
// peer is root: the daemon opens them as root, and a member of the
// socket's group must not read or write files through it that it could
// not itself. Others stream archives through the client instead (-).
func checkPaths(req jobs.Request, uid int64) error {
	if uid == 0 {
		return nil
	}
	var path, instead string
	switch {
	case req.Import != nil && req.Import.Path != "":
		path, instead = "archive "+req.Import.Path, "stream the archive through the client instead"
	case req.Export != nil && req.Export.Path != "":
		path, instead = "archive "+req.Export.Path, "stream the archive through the client instead"
	case req.Pull != nil && req.Pull.Registry.HostsDir != "":
		path, instead = "hosts directory "+req.Pull.Registry.HostsDir, "the daemon's registry.config_path applies"
	case req.Push != nil && req.Push.Registry.HostsDir != "":
		path, instead = "hosts directory "+req.Push.Registry.HostsDir, "the daemon's registry.config_path applies"
	default:
		return nil
	}
	return fmt.Errorf("%s: the daemon opens paths as root, for root only (%s); %s: %w",
		path, peercred.Name(uid), instead, errdefs.ErrPermissionDenied)
}
