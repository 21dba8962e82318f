// Package server serves strata's store over containerd's gRPC API
// (services v1 of github.com/containerd/containerd/api), so that ctr,
// nerdctl and BuildKit work against it unchanged. Each service is a
// package of services/ (services/content, services/images…), built over
// the small interfaces it declares, and New lists them all, one line
// each; this package has what they share: the interceptors (namespace
// from gRPC metadata, errdefs errors to gRPC codes through containerd's
// errgrpc, metrics), the event exchange they publish on
// (events/exchange), the peer credentials of the socket (server/peercred),
// the plugin list introspection shows (plugins.go), the drain on Stop
// (drain.go) and the CRI's wiring (cri.go).
package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/access"
	"github.com/strata-oci/strata/events/exchange"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
	containerssvc "github.com/strata-oci/strata/services/containers"
	contentsvc "github.com/strata-oci/strata/services/content"
	diffsvc "github.com/strata-oci/strata/services/diff"
	eventssvc "github.com/strata-oci/strata/services/events"
	imagessvc "github.com/strata-oci/strata/services/images"
	introspectionsvc "github.com/strata-oci/strata/services/introspection"
	jobssvc "github.com/strata-oci/strata/services/jobs"
	leasessvc "github.com/strata-oci/strata/services/leases"
	namespacessvc "github.com/strata-oci/strata/services/namespaces"
	snapshotssvc "github.com/strata-oci/strata/services/snapshots"
	"github.com/strata-oci/strata/services/streaming"
	"github.com/strata-oci/strata/services/transfer"
	versionsvc "github.com/strata-oci/strata/services/version"
	"github.com/strata-oci/strata/wiring"
)

// Config configures a Server.
type Config struct {
	// MaxRecvMsgSize and MaxSendMsgSize bound gRPC messages (default 16 MiB).
	MaxRecvMsgSize, MaxSendMsgSize int
	Logger                         *slog.Logger
	// UUID identifies this daemon's store (introspection Server()).
	UUID string
	// Version and Revision are what the version service answers.
	Version, Revision string
	// Jobs are the defaults of the jobs clients run (services/jobs).
	Jobs jobs.Defaults
	// CRI configures the Kubernetes CRI services (cri.go).
	CRI CRIConfig
	// Runtime configures the tasks service (tasks.go).
	Runtime RuntimeConfig
	// Access says who may create, change and delete containers and
	// tasks; every service that does calls Access.MayRun.
	Access access.Policy
	// Network, when set, is torn down for each container whose task
	// exits, and cleaned up at start (network.go).
	Network Networks
}

// Server is the gRPC server over one store.
type Server struct {
	Store *wiring.Store
	Log   *slog.Logger
	cfg   Config
	grpc  *grpc.Server

	mu       sync.Mutex
	plugins  []Plugin
	stopping bool
	running  int // drain.go: jobs running now
	// idleTimer returns memory to the OS once no job has run for a while.
	idleTimer *time.Timer

	// drain.go: the jobs running, and what cancels them when Stop gives up.
	jobs       sync.WaitGroup
	jobsCtx    context.Context
	cancelJobs context.CancelFunc

	// events is what the services publish on after each change, and
	// what the events service serves.
	events *exchange.Exchange

	// runner runs every long operation the daemon's front doors start (the
	// jobs service, containerd's transfer service, the CRI's pulls), so that
	// they share downloads: one fetch per blob however many callers want it.
	runner *jobs.Runner

	metrics *metrics // metrics.go
	// extraMetrics write the metrics of services outside this package.
	extraMetrics []func(io.Writer)

	health   *health.Server
	tasks    *taskRuntime  // tasks.go
	netWatch *networkWatch // network.go
}

// New returns a Server for st with every service strata serves.
func New(st *wiring.Store, cfg Config) (*Server, error) {
	if cfg.MaxRecvMsgSize == 0 {
		cfg.MaxRecvMsgSize = 16 << 20
	}
	if cfg.MaxSendMsgSize == 0 {
		cfg.MaxSendMsgSize = 16 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Store: st, Log: log, cfg: cfg, metrics: newMetrics()}
	s.jobsCtx, s.cancelJobs = context.WithCancel(context.Background())
	s.events = exchange.New(log, 0)
	s.runner = jobs.NewRunner(st, cfg.Jobs)
	s.grpc = grpc.NewServer(
		grpc.Creds(peercred.Credentials()),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	)
	s.health = health.NewServer()
	// The streams clients open with the streaming service, which
	// transfers read.
	streams := streaming.NewManager()
	// The jobs service runs what strata's CLI asks of the daemon; the
	// transfer service tells subscribers about images as it does.
	js := jobssvc.New(jobssvc.Config{Runner: s.runner, Images: st.DB.Images(), Events: s.events,
		StartJob: s.startJob, Logger: log, UserAgent: "strata/" + cfg.Version})
	// Every service, one line each, in the order introspection lists
	// their plugins (that of their files, as when they registered from
	// init): `ctr plugins ls` reads the same as before.
	s.serve(containerssvc.New(containerssvc.Config{Store: st.DB.Containers(), Publisher: s.events, MayRun: cfg.Access.MayRun,
		Deletable: s.CheckContainerDeletable, // tasks.go
		Logger:    log.With("service", "containers")}),
		Plugin{Type: "io.containerd.service.v1", ID: "containers-service", Requires: []string{"io.containerd.metadata.v1"}},
		grpcPlugin("containers", "io.containerd.service.v1"))
	s.serve(contentsvc.New(st.DB.ContentStore(), s.events, log), Plugin{Type: "io.containerd.content.v1", ID: "content"}, grpcPlugin("content"))
	s.serve(diffsvc.New(st.DB.ContentStore()), grpcPlugin("diff"), Plugin{Type: "io.containerd.differ.v1", ID: "walking"})
	s.serve(eventssvc.New(s.events, cfg.Access.MayRun), Plugin{Type: "io.containerd.event.v1", ID: "exchange"}, grpcPlugin("events", "io.containerd.event.v1"))
	s.serve(imagessvc.New(st.DB.Images(), s.events, log), grpcPlugin("images", "io.containerd.metadata.v1"))
	s.serve(introspectionsvc.New(cfg.UUID, s.Plugins), grpcPlugin("introspection"))
	s.serve(js, Plugin{Type: "io.strata.grpc.v1", ID: "jobs", Requires: []string{"io.containerd.metadata.v1"},
		Capabilities: []string{"pull", "push", "import", "export", "gc", "fsck"}})
	s.serve(leasessvc.New(st.DB.Leases()), Plugin{Type: "io.containerd.lease.v1", ID: "manager", Requires: []string{"io.containerd.metadata.v1"}}, grpcPlugin("leases", "io.containerd.lease.v1"))
	s.serve(namespacessvc.New(st.DB.Namespaces(), s.events, log), metadataPlugin, grpcPlugin("namespaces", "io.containerd.metadata.v1"))
	s.serve(snapshotssvc.New(st.DB, s.events, log), s.snapshotsPlugins()...)
	s.serve(versionsvc.New(cfg.Version, cfg.Revision), grpcPlugin("version"))
	// What containerd 2.x clients use beyond API v1's services. gRPC's
	// health service: containerd's Go client and test harness wait on it;
	// SERVING until Stop.
	s.serve(healthService{s.health}, grpcPlugin("healthcheck"))
	s.serve(streaming.NewService(streams), grpcPlugin("streaming", "io.containerd.streaming.v1"))
	s.serve(transfer.New(transfer.Config{Runner: s.runner, Streams: streams, Images: st.DB.Images(), StartJob: s.startLongJob,
		PeerUID: peercred.UID, Recorded: js.PublishImages, Logger: log.With("service", "transfer"), UserAgent: "strata/" + cfg.Version}),
		Plugin{Type: "io.containerd.grpc.v1", ID: "transfer", Requires: []string{"io.containerd.transfer.v1"}, Capabilities: []string{"pull", "push", "import", "export", "tag"}})
	// cri.go: the Kubernetes CRI, unless the config disables it.
	if err := s.registerCRI(); err != nil {
		return nil, err
	}
	// network.go: subscribed before the tasks load, cleaned up after.
	if err := s.startNetworkWatch(); err != nil {
		return nil, err
	}
	if err := s.registerTasks(); err != nil { // tasks.go
		s.closeNetworkWatch()
		return nil, err
	}
	if err := s.cleanupNetworks(context.Background()); err != nil {
		s.closeNetworkWatch()
		s.closeTasks()
		return nil, err
	}
	return s, nil
}

// healthService serves gRPC's health service.
type healthService struct{ *health.Server }

func (h healthService) Register(g *grpc.Server) { healthpb.RegisterHealthServer(g, h.Server) }

// Events returns the server's exchange: the services publish on it after
// each change, and the events service serves it.
func (s *Server) Events() *exchange.Exchange { return s.events }

// GRPC is the underlying server, for services to register on.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Config returns the server's configuration.
func (s *Server) Config() Config { return s.cfg }

// Serve answers on l until Stop.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop lets in-flight calls and jobs finish for up to grace, then ends
// the rest: calls are cut, jobs cancelled (and waited for, so that the
// store can close after Stop).
func (s *Server) Stop(grace time.Duration) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.health.Shutdown() // NOT_SERVING from now on
	// tasks.go: calls waiting on a shim (ctr run's Wait) end now rather
	// than hold the drain; the shims keep running.
	s.closeTasks()
	s.closeNetworkWatch() // network.go
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		s.jobs.Wait() // jobs whose clients went away
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancelJobs()
		s.grpc.Stop()
		<-done
	}
	s.cancelJobs()
}

// withNamespace puts the namespace and the lease of the call's metadata on
// ctx: what the call creates is then held by the client's lease, as in
// containerd.
func withNamespace(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	if v := md.Get(namespaces.GRPCHeader); len(v) > 0 && v[0] != "" {
		ctx = namespaces.WithNamespace(ctx, v[0])
	}
	if v := md.Get(leases.GRPCHeader); len(v) > 0 && v[0] != "" {
		ctx = leases.WithLease(ctx, v[0])
	}
	return ctx
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(withNamespace(ctx), req)
	if err != nil {
		s.Log.Debug("call failed", "method", info.FullMethod, "error", err)
	}
	err = errgrpc.ToGRPC(err)
	s.metrics.observe(info.FullMethod, err, time.Since(start))
	return resp, err
}

type nsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (n nsStream) Context() context.Context { return n.ctx }

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, nsStream{ss, withNamespace(ss.Context())})
	if err != nil {
		s.Log.Debug("stream failed", "method", info.FullMethod, "error", err)
	}
	err = errgrpc.ToGRPC(err)
	s.metrics.observe(info.FullMethod, err, time.Since(start))
	return err
}
