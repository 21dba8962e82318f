// Package server serves strata's store over containerd's gRPC API
// (services v1 of github.com/containerd/containerd/api), so that ctr,
// nerdctl and BuildKit work against it unchanged. Each service lives in
// its own file (or package), and New lists them all; this file has what
// they share: the interceptors (namespace from gRPC metadata, errdefs
// errors to gRPC codes through containerd's errgrpc, metrics), the
// plugin list introspection shows, and the drain on Stop.
package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	streamingapi "github.com/containerd/containerd/api/services/streaming/v1"
	transferapi "github.com/containerd/containerd/api/services/transfer/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/access"
	"github.com/strata-oci/strata/internal/wiring"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/services/streaming"
	"github.com/strata-oci/strata/services/transfer"
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
	// Jobs are the defaults of the jobs clients run (jobs.go).
	Jobs jobs.Defaults
	// CRI configures the Kubernetes CRI services (cri.go).
	CRI CRIConfig
	// Runtime configures the tasks service (tasks.go).
	Runtime RuntimeConfig
	// Access says who may create, change and delete containers and
	// tasks; every service that does calls Access.MayRun.
	Access access.Policy
}

// Plugin describes one part of strata for introspection, in containerd's
// terms (type, id, requires, exports, capabilities, init error).
type Plugin struct {
	Type, ID     string
	Requires     []string
	Exports      map[string]string
	Capabilities []string
	InitErr      error
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
	running  int // jobs.go: jobs running now
	// idleTimer returns memory to the OS once no job has run for a while.
	idleTimer *time.Timer

	// jobs.go: the jobs running, and what cancels them when Stop gives up.
	jobs       sync.WaitGroup
	jobsCtx    context.Context
	cancelJobs context.CancelFunc

	events *Exchange // events.go: what the services publish on

	// runner runs every long operation the daemon's front doors start (the
	// jobs service, containerd's transfer service, the CRI's pulls), so that
	// they share downloads: one fetch per blob however many callers want it.
	runner *jobs.Runner

	metrics *metrics // metrics.go
	// extraMetrics write the metrics of services outside this package.
	extraMetrics []func(io.Writer)

	health *health.Server
	tasks  *taskRuntime // tasks.go
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
	s.events = NewExchange(log, 0) // events.go
	s.runner = jobs.NewRunner(st, cfg.Jobs)
	s.grpc = grpc.NewServer(
		grpc.Creds(peerCreds{}), // peercred.go
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	)
	// Every service, one line each, in the order introspection lists
	// their plugins (that of their files, as when they registered from
	// init): `ctr plugins ls` reads the same as before.
	s.registerContainers()    // containers.go
	s.registerContent()       // content.go
	s.registerDiff()          // diff.go
	s.registerEvents()        // events.go
	s.registerImages()        // images.go
	s.registerIntrospection() // introspection.go
	s.registerJobs()          // jobs.go
	s.registerLeases()        // leases.go
	s.registerNamespaces()    // namespaces.go
	s.registerSnapshots()     // snapshots.go
	s.registerVersion()       // version.go
	s.registerContainerd2()   // health, streaming, transfer (services/…)
	// cri.go: the Kubernetes CRI, unless the config disables it.
	if err := s.registerCRI(); err != nil {
		return nil, err
	}
	if err := s.registerTasks(); err != nil { // tasks.go
		return nil, err
	}
	return s, nil
}

// registerContainerd2 adds what containerd 2.x clients use beyond API v1's
// services: health, streaming and transfer (services/…).
func (s *Server) registerContainerd2() {
	// containerd serves gRPC's health service; its Go client and test
	// harness wait on it. SERVING until Stop.
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "healthcheck"})

	streams := streaming.NewManager()
	streamingapi.RegisterStreamingServer(s.grpc, streaming.NewService(streams))
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "streaming", Requires: []string{"io.containerd.streaming.v1"}})
	js := &jobService{s: s}
	transferapi.RegisterTransferServer(s.grpc, transfer.New(transfer.Config{
		Runner: s.runner, Streams: streams, Images: s.Store.DB.Images(),
		StartJob: func(call context.Context) (context.Context, context.CancelFunc, func(), error) {
			return s.startJob(call, true)
		},
		PeerUID: peerUID, Recorded: js.publishImages, Logger: s.Log.With("service", "transfer"),
		UserAgent: "strata/" + s.cfg.Version,
	}))
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "transfer", Requires: []string{"io.containerd.transfer.v1"},
		Capabilities: []string{"pull", "push", "import", "export", "tag"}})
}

// GRPC is the underlying server, for services to register on.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Config returns the server's configuration.
func (s *Server) Config() Config { return s.cfg }

// AddPlugin records a part of strata for introspection.
func (s *Server) AddPlugin(p Plugin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plugins = append(s.plugins, p)
}

// Plugins lists what AddPlugin recorded.
func (s *Server) Plugins() []Plugin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Plugin(nil), s.plugins...)
}

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
