package v2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	eventsttrpc "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/namespaces"
)

// Topics of the task events, as containerd names them.
const (
	TopicTaskExit   = "/tasks/exit"
	TopicTaskDelete = "/tasks/delete"
)

// Config configures a Manager.
type Config struct {
	// State is the directory of the bundles (<daemon state>/runtime).
	State string
	// Address is the daemon's gRPC socket. Shims publish their events to
	// the ttrpc socket Address + ".ttrpc", which the manager serves.
	Address string
	// Events receives the shims' events, and those the manager makes for
	// tasks whose shim died; an error is logged.
	Events func(ctx context.Context, env *types.Envelope) error
	Logger *slog.Logger
	// Debug starts shims with -debug.
	Debug bool
	// Version is the daemon's version, told to shims of containerd 2.3+.
	Version string
	// RuncRoot is runc's state directory (runc --root) for the tasks of
	// runc shims whose options name none: this daemon's own, not the
	// host-wide /run/containerd/runc (runcroot.go). Empty leaves runc's
	// default.
	RuncRoot string
}

// Manager starts, finds and removes the tasks of every namespace.
type Manager struct {
	cfg           Config
	log           *slog.Logger
	publishBinary string
	events        *ttrpc.Server
	eventsDone    chan struct{}

	mu       sync.Mutex
	tasks    map[taskKey]*Task
	creating map[taskKey]bool
	closing  bool
	// bootstrapShims are the shim binaries that want bootstrap
	// parameters on stdin (binary.go).
	bootstrapShims map[string]bool
	// background: cleanups of tasks whose shim died.
	background sync.WaitGroup
}

type taskKey struct{ ns, id string }

// Task is one container's task, under its shim.
type Task struct {
	ID, Namespace string
	// Bundle is the task's bundle directory.
	Bundle string
	// Runtime is the runtime name, Binary the shim binary.
	Runtime, Binary string
	// Version is the shim's task API version (2 or 3).
	Version int
	// Pid is the init process's pid, as Create answered (0 when loaded).
	Pid uint32

	api  TaskAPI
	conn *ttrpc.Client
	log  io.Closer

	mu       sync.Mutex
	deleting bool
	dead     bool
	// deleteEvent closes when the shim's /tasks/delete event arrived.
	deleteEvent     chan struct{}
	deleteEventOnce sync.Once
}

// API is the shim's task service. Its errors cross ttrpc as gRPC statuses;
// Err turns them into errdefs errors.
func (t *Task) API() TaskAPI { return t.api }

// Dead tells whether the connection to the shim is lost.
func (t *Task) Dead() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dead
}

// Err turns an error of a shim call into the errdefs vocabulary.
func Err(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return fmt.Errorf("connection to the shim closed (the shim exited, or the daemon is stopping): %w", errdefs.ErrUnavailable)
	}
	return errgrpc.ToNative(err)
}

// New returns a manager that keeps bundles under cfg.State and serves the
// shims' events on cfg.Address + ".ttrpc". Load then reconnects to the
// shims of an earlier daemon.
func New(cfg Config) (*Manager, error) {
	if cfg.State == "" || cfg.Address == "" {
		return nil, fmt.Errorf("runtime: state directory and daemon address are required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = func(context.Context, *types.Envelope) error { return nil }
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("runtime: publish binary: %w", err)
	}
	if err := os.MkdirAll(cfg.State, 0o711); err != nil {
		return nil, fmt.Errorf("runtime: state directory: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, publishBinary: self,
		tasks: make(map[taskKey]*Task), creating: make(map[taskKey]bool), eventsDone: make(chan struct{}),
		bootstrapShims: make(map[string]bool)}
	// The socket is 0600, but it exists before the chmod and a mode can
	// slip: the kernel's word on the peer (SO_PEERCRED) decides. Only
	// the daemon's uid, which its shims run as, may publish a task's
	// exit or delete; anyone else could make clients believe a running
	// container ended.
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireUidGid(os.Geteuid(), -1)))
	if err != nil {
		return nil, fmt.Errorf("runtime: events server: %w", err)
	}
	eventsttrpc.RegisterTTRPCEventsService(srv, (*eventsService)(m))
	sock := m.ttrpcAddress()
	os.Remove(sock) // a stale socket of a daemon that died
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("runtime: events socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("runtime: events socket: %w", err)
	}
	m.events = srv
	go func() {
		defer close(m.eventsDone)
		srv.Serve(context.Background(), l)
	}()
	return m, nil
}

func (m *Manager) ttrpcAddress() string { return m.cfg.Address + ".ttrpc" }

func (m *Manager) bundleDir(ns, id string) string { return filepath.Join(m.cfg.State, ns, id) }

// CreateOpts is what a task is made of.
type CreateOpts struct {
	ID string
	// Runtime is the container's runtime name; RuntimePath, when set, the
	// shim binary to run instead of the one the name resolves to.
	Runtime, RuntimePath string
	// TaskOptions are the request's runtime options, RuntimeOptions the
	// container's: the first of them set goes to the shim's start command
	// (on stdin) and to its Create, as containerd does.
	RuntimeOptions, TaskOptions *anypb.Any
	// Spec is the container's OCI spec (a JSON Any).
	Spec *anypb.Any
	// Rootfs are the mounts of the root filesystem; the shim mounts them.
	Rootfs []*types.Mount
	// Stdin, Stdout, Stderr are the client's FIFOs or URIs (binary://,
	// file://), passed to the shim as they are.
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// Create starts a shim for a new task in the namespace of ctx and creates
// the task in it. It fails with errdefs.ErrAlreadyExists when the
// namespace has a task of that id, errdefs.ErrNotFound when the runtime's
// shim is not installed, and with the shim's error (runc's) when the task
// cannot be created; then nothing is left: no shim, bundle or mount.
func (m *Manager) Create(ctx context.Context, o CreateOpts) (_ *Task, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if err := validID("task", o.ID); err != nil {
		return nil, err
	}
	if err := validID("namespace", ns); err != nil {
		return nil, err
	}
	k := taskKey{ns, o.ID}
	m.mu.Lock()
	switch {
	case m.closing:
		m.mu.Unlock()
		return nil, fmt.Errorf("task %s: the runtime is closing: %w", o.ID, errdefs.ErrUnavailable)
	case m.tasks[k] != nil || m.creating[k]:
		m.mu.Unlock()
		return nil, fmt.Errorf("task %s: %w", o.ID, errdefs.ErrAlreadyExists)
	}
	m.creating[k] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.creating, k)
		m.mu.Unlock()
	}()

	// As containerd: the request's options, else the container's, go
	// both to the shim's start and to Create.
	opts := o.TaskOptions
	if len(opts.GetValue()) == 0 {
		opts = o.RuntimeOptions
	}
	binary, err := resolveBinary(o.Runtime, o.RuntimePath)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	if opts, err = m.withRuncRoot(binary, opts); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	dir := m.bundleDir(ns, o.ID)
	if err := newBundle(dir, o.Spec); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	t := &Task{ID: o.ID, Namespace: ns, Bundle: dir, Runtime: o.Runtime, Binary: binary, deleteEvent: make(chan struct{})}
	rec := record{Runtime: o.Runtime, Binary: binary}
	started := false
	defer func() {
		if retErr == nil {
			return
		}
		if t.conn != nil {
			t.mu.Lock()
			t.deleting = true
			t.mu.Unlock()
			// A shim without a task exits on Shutdown.
			t.api.Shutdown(context.WithoutCancel(ctx), &taskapi.ShutdownRequest{ID: o.ID})
			t.conn.Close()
		}
		if started {
			// The shim's own cleanup: runc delete, unmount of the rootfs.
			if _, err := m.deleteShim(context.WithoutCancel(ctx), binary, ns, o.ID, dir); err != nil {
				m.log.Debug("shim cleanup after a failed create", "id", o.ID, "namespace", ns, "error", err)
			}
		}
		if t.log != nil {
			t.log.Close()
		}
		if err := removeBundle(dir); err != nil {
			m.log.Warn("bundle left after a failed create", "id", o.ID, "namespace", ns, "error", err)
		}
	}()
	if err := writeRecord(dir, rec); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	if t.log, err = m.copyShimLog(dir, ns, o.ID); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	started = true
	boot, err := m.startShim(ctx, binary, ns, o.ID, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	rec.Bootstrap = boot
	if err := writeRecord(dir, rec); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	if err := m.connect(ctx, t, boot); err != nil {
		return nil, fmt.Errorf("task %s: %w", o.ID, err)
	}
	resp, err := t.api.Create(ctx, &taskapi.CreateTaskRequest{
		ID: o.ID, Bundle: dir, Rootfs: o.Rootfs, Terminal: o.Terminal,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Options: opts,
	})
	if err != nil {
		return nil, fmt.Errorf("create task %s (runtime %s): %w", o.ID, o.Runtime, Err(err))
	}
	t.Pid = resp.GetPid()
	m.mu.Lock()
	m.tasks[k] = t
	m.mu.Unlock()
	return t, nil
}

// connect dials a task's shim and watches the connection.
func (m *Manager) connect(ctx context.Context, t *Task, boot Bootstrap) error {
	conn, api, err := dial(ctx, boot, t.Namespace, func() { m.connectionLost(t) })
	if err != nil {
		return err
	}
	t.conn, t.api, t.Version = conn, api, boot.Version
	return nil
}

// connectionLost runs when a shim's connection ends. Unless the task is
// being deleted or the daemon is closing, the shim died: its task is
// cleaned up as containerd does (the shim's delete command, an exit and a
// delete event, the bundle removed).
func (m *Manager) connectionLost(t *Task) {
	t.mu.Lock()
	t.dead = true
	deleting := t.deleting
	t.mu.Unlock()
	m.mu.Lock()
	// A task not yet registered is its Create's (or Load's) to clean up.
	skip := deleting || m.closing || m.tasks[taskKey{t.Namespace, t.ID}] != t
	if !skip {
		m.background.Add(1)
	}
	m.mu.Unlock()
	if skip {
		return
	}
	go func() {
		defer m.background.Done()
		ctx := namespaces.WithNamespace(context.Background(), t.Namespace)
		if _, err := m.cleanupDead(ctx, t); err != nil {
			m.log.Warn("cleanup of a task whose shim died", "id", t.ID, "namespace", t.Namespace, "error", err)
		}
	}()
}

// cleanupDead removes a task whose shim is gone: the shim's delete
// command, exit (unless published) and delete events, the bundle.
func (m *Manager) cleanupDead(ctx context.Context, t *Task) (*taskapi.DeleteResponse, error) {
	t.mu.Lock()
	t.deleting = true
	t.mu.Unlock()
	m.log.Info("cleaning up a task whose shim is gone", "id", t.ID, "namespace", t.Namespace)
	resp, err := m.deleteShim(ctx, t.Binary, t.Namespace, t.ID, t.Bundle)
	if err != nil {
		m.log.Warn("shim delete", "id", t.ID, "namespace", t.Namespace, "error", err)
		// As containerd: the task ended, killed with its shim.
		resp = &taskapi.DeleteResponse{ExitStatus: 128 + 9, ExitedAt: timestamppb.Now()}
	}
	if resp.GetExitedAt() == nil {
		resp.ExitedAt = timestamppb.Now()
	}
	if m.markExit(t.Namespace, t.ID) {
		m.publish(ctx, t.Namespace, TopicTaskExit, &apievents.TaskExit{ContainerID: t.ID, ID: t.ID, Pid: resp.GetPid(),
			ExitStatus: resp.GetExitStatus(), ExitedAt: resp.GetExitedAt()})
	}
	m.publish(ctx, t.Namespace, TopicTaskDelete, &apievents.TaskDelete{ContainerID: t.ID, ID: t.ID, Pid: resp.GetPid(),
		ExitStatus: resp.GetExitStatus(), ExitedAt: resp.GetExitedAt()})
	m.forget(t)
	return resp, removeBundle(t.Bundle)
}

func (m *Manager) forget(t *Task) {
	if t.conn != nil {
		t.conn.Close()
	}
	if t.log != nil {
		t.log.Close()
	}
	m.mu.Lock()
	if m.tasks[taskKey{t.Namespace, t.ID}] == t {
		delete(m.tasks, taskKey{t.Namespace, t.ID})
	}
	m.mu.Unlock()
}

func (m *Manager) publish(ctx context.Context, ns, topic string, ev proto.Message) {
	a, err := anypb.New(ev)
	if err != nil {
		m.log.Warn("event not published", "topic", topic, "error", err)
		return
	}
	// Type URLs as containerd's typeurl makes them (the full name).
	a.TypeUrl = string(ev.ProtoReflect().Descriptor().FullName())
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: ns, Topic: topic, Event: a}
	if err := m.cfg.Events(ctx, env); err != nil {
		m.log.Warn("event not published", "topic", topic, "error", err)
	}
}

// markExit records that the exit of a task's init process was published;
// it returns false when it had been already.
func (m *Manager) markExit(ns, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := filepath.Join(m.bundleDir(ns, id), exitPublishedFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false
	}
	if err == nil {
		f.Close()
	}
	return true
}

// Get returns the task id of the namespace of ctx, or errdefs.ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tasks[taskKey{ns, id}]
	if t == nil {
		return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

// List returns the tasks of the namespace of ctx, by id.
func (m *Manager) List(ctx context.Context) ([]*Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	var out []*Task
	for k, t := range m.tasks {
		if k.ns == ns {
			out = append(out, t)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Delete deletes a task's init process in its shim, stops the shim and
// removes the bundle, answering how the task ended. A task that still
// runs is the shim's error (errdefs.ErrFailedPrecondition). A task whose
// shim died is cleaned up with the shim's delete command.
func (m *Manager) Delete(ctx context.Context, id string) (*taskapi.DeleteResponse, error) {
	t, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.deleting {
		t.mu.Unlock()
		return nil, fmt.Errorf("task %s: being deleted: %w", id, errdefs.ErrFailedPrecondition)
	}
	t.deleting = true
	dead := t.dead
	t.mu.Unlock()
	if dead {
		return m.cleanupDead(ctx, t)
	}
	resp, err := t.api.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil {
		err = Err(err)
		if errors.Is(err, errdefs.ErrUnavailable) {
			return m.cleanupDead(ctx, t)
		}
		t.mu.Lock()
		t.deleting = false
		t.mu.Unlock()
		return nil, fmt.Errorf("delete task %s: %w", id, err)
	}
	// The shim publishes the delete event after it answered; shims of
	// containerd 2.x drop the events they have not sent when they shut
	// down, so give it a moment to arrive first.
	select {
	case <-t.deleteEvent:
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	// The shim exits once its last task is gone.
	if _, err := t.api.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		m.log.Debug("shim shutdown", "id", id, "error", err)
	}
	m.forget(t)
	if err := removeBundle(t.Bundle); err != nil {
		return resp, fmt.Errorf("delete task %s: %w", id, err)
	}
	return resp, nil
}

// Close disconnects from the shims, which keep running with their tasks,
// and stops serving events.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closing = true
	tasks := make([]*Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		tasks = append(tasks, t)
	}
	m.mu.Unlock()
	m.background.Wait()
	for _, t := range tasks {
		t.conn.Close()
		if t.log != nil {
			t.log.Close()
		}
	}
	err := m.events.Close()
	<-m.eventsDone
	os.Remove(m.ttrpcAddress())
	return err
}

// copyShimLog opens the bundle's log FIFO, which the shim writes to, and
// copies its lines to the daemon's log until the returned closer closes.
// Opened read-write, it never blocks and never reads EOF while the shim
// restarts its end.
func (m *Manager) copyShimLog(dir, ns, id string) (io.Closer, error) {
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("shim log: %w", err)
	}
	log := m.log.With("shim", id, "namespace", ns)
	go func() {
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			line := s.Text()
			switch {
			case strings.Contains(line, "level=error"), strings.Contains(line, "level=fatal"), strings.Contains(line, "level=warn"):
				log.Warn(line)
			default:
				log.Debug(line)
			}
		}
	}()
	return f, nil
}

// eventsService is the ttrpc events service shims publish to.
type eventsService Manager

func (e *eventsService) Forward(ctx context.Context, req *eventsttrpc.ForwardRequest) (*emptypb.Empty, error) {
	m := (*Manager)(e)
	env := req.GetEnvelope()
	if env == nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("forward: no envelope: %w", errdefs.ErrInvalidArgument))
	}
	// The exit mark is a file in the bundle these name.
	if err := validID("namespace", env.GetNamespace()); err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("forward %s: %w", env.GetTopic(), err))
	}
	if env.GetTopic() == TopicTaskExit {
		var ev apievents.TaskExit
		if err := anypb.UnmarshalTo(env.GetEvent(), &ev, proto.UnmarshalOptions{}); err == nil && ev.ContainerID == ev.ID {
			if err := validID("task", ev.ContainerID); err != nil {
				return nil, errgrpc.ToGRPC(fmt.Errorf("forward %s: %w", env.GetTopic(), err))
			}
			if !m.markExit(env.GetNamespace(), ev.ContainerID) {
				return &emptypb.Empty{}, nil // published once already
			}
		}
	}
	if env.GetTopic() == TopicTaskDelete {
		var ev apievents.TaskDelete
		if err := anypb.UnmarshalTo(env.GetEvent(), &ev, proto.UnmarshalOptions{}); err == nil && (ev.ID == "" || ev.ID == ev.ContainerID) {
			m.mu.Lock()
			t := m.tasks[taskKey{env.GetNamespace(), ev.ContainerID}]
			m.mu.Unlock()
			if t != nil && t.deleteEvent != nil {
				t.deleteEventOnce.Do(func() { close(t.deleteEvent) })
			}
		}
	}
	if err := m.cfg.Events(ctx, env); err != nil {
		m.log.Warn("shim event not republished", "topic", env.GetTopic(), "namespace", env.GetNamespace(), "error", err)
	}
	return &emptypb.Empty{}, nil
}

// timeout bounds a call to a shim that should answer at once.
const timeout = 10 * time.Second
