// Package jobs serves strata's jobs service (jobs.ServiceName): the long
// operations of package jobs (pull, push, import, export, unpack, gc,
// fsck) run by the daemon for its clients, one bidirectional stream per
// job carrying progress, credential questions, archive data and the
// result.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
)

// Runner runs a job to its end: jobs.Runner, shared by every front door
// of the daemon so that they share downloads.
type Runner interface {
	Run(ctx context.Context, req jobs.Request, env jobs.Env) (jobs.Result, error)
}

// imageGetter reads the image records a job made, for their events.
type imageGetter interface {
	Get(ctx context.Context, name string) (images.Image, error)
}

// Config is what a Service uses of the daemon.
type Config struct {
	Runner Runner
	Images imageGetter
	// Events is told about the images jobs record and repair (nil: no
	// events).
	Events events.Publisher
	// StartJob returns the context a job runs on (the call's values,
	// cancelled when the daemon stops), its cancel, and release, which
	// ends the job's hold on the daemon's shutdown. long says the job
	// moves data (pull, push, import, export), not a quick query.
	StartJob  func(call context.Context, long bool) (context.Context, context.CancelFunc, func(), error)
	Logger    *slog.Logger
	UserAgent string
}

// Service runs jobs.Requests for clients: strata's CLI in client mode,
// over one bidirectional stream per job (jobs.ServiceName, JSON
// messages). A job runs on a context of its own: a client that goes away
// (killed, its terminal closed) leaves it running to the end, one that
// sends Cancel stops it. The daemon drains jobs like calls when it stops,
// and cancels those still running when the grace period ends.
type Service struct {
	c Config
}

// New returns the service over c.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{c: c}
}

// Register serves the service on g.
func (js *Service) Register(g *grpc.Server) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: jobs.ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Run",
			Handler:       func(_ any, stream grpc.ServerStream) error { return js.run(stream) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}, js)
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

func (js *Service) run(stream grpc.ServerStream) error {
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
	ctx, cancel, release, err := js.c.StartJob(stream.Context(), req.Long())
	if err != nil {
		return err
	}
	defer release()
	defer cancel()

	c := &jobConn{stream: stream, progress: jobs.NewCoalescer(), frames: make(chan jobs.ServerFrame, 16),
		done: make(chan struct{}), gone: make(chan struct{}), questions: map[string]*question{}}
	sent := make(chan struct{})
	go c.sender(sent)
	log := js.c.Logger.With("job", kind)
	env := jobs.Env{Progress: c.progress, Credentials: c.credentials, Logger: log, UserAgent: js.c.UserAgent,
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
	res, err := js.c.Runner.Run(ctx, req, env)
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
			js.PublishImages(after, res.Images)
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

// PublishImages tells event subscribers about the images a pull or an
// import recorded, as the images service does for its clients: a record
// made by the job is an ImageCreate, one it replaced an ImageUpdate. The
// transfer service's jobs are told here too.
func (js *Service) PublishImages(ctx context.Context, imgs []jobs.Image) {
	is := js.c.Images
	for _, ji := range imgs {
		img, err := is.Get(ctx, ji.Name)
		if err != nil {
			continue // removed meanwhile: its delete was published
		}
		if img.CreatedAt.Equal(img.UpdatedAt) {
			events.Tell(ctx, js.c.Events, js.c.Logger, events.TopicImageCreate, &apievents.ImageCreate{Name: img.Name, Labels: img.Labels})
		} else {
			events.Tell(ctx, js.c.Events, js.c.Logger, events.TopicImageUpdate, &apievents.ImageUpdate{Name: img.Name, Labels: img.Labels})
		}
	}
}

// publishRepairs tells event subscribers about the images fsck --repair
// removed, as the images service does for its clients' deletes.
func (js *Service) publishRepairs(ctx context.Context, problems []metadata.Problem) {
	for _, p := range problems {
		if p.Repaired && p.Kind == "bad-manifest" && p.Image != "" {
			events.Tell(namespaces.WithNamespace(ctx, p.Namespace), js.c.Events, js.c.Logger, events.TopicImageDelete, &apievents.ImageDelete{Name: p.Image})
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
