package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/wiring"
)

// DefaultAddress is where stratad listens unless configured otherwise.
const DefaultAddress = "/run/strata/strata.sock"

// addressEnv names the daemon's socket, like --address.
const addressEnv = "STRATA_ADDRESS"

// backend is the store a command works on: opened in this process
// (embedded mode) or the daemon's, through its socket (client mode). Both
// give the same stores and run the same jobs, so every command behaves the
// same either way.
type backend interface {
	Containers() containers.Store
	Content() content.Store
	Images() images.Store
	Leases() leases.Manager
	Namespaces() namespaces.Store
	// Snapshotter returns the snapshotter by name ("" for the default), or
	// nil when there is none by that name.
	Snapshotter(name string) snapshots.Snapshotter
	Info() jobs.Info
	// Run runs a long operation: here, or in the daemon, where it outlives
	// this process unless ctx is cancelled.
	Run(ctx context.Context, req jobs.Request, env jobs.Env) (jobs.Result, error)
	// Address is the daemon's socket; "" in embedded mode.
	Address() string
	// OpensPaths says whether a job may be given a path to open: always
	// in embedded mode; through the daemon, which opens them as root, only
	// for root (the rest stream archives through this process).
	OpensPaths() bool
	Close() error
}

// embedded is a store opened by this process.
type embedded struct {
	s      *wiring.Store
	runner *jobs.Runner
	info   jobs.Info

	// The in-process server of the container verbs (embedserver.go).
	srv    *server.Server
	conn   *grpc.ClientConn
	sock   string
	served chan struct{}
}

func openEmbedded(ctx context.Context, root string, a *app) (*embedded, error) {
	timeout := a.lockTimeout
	if timeout == 0 {
		timeout = -1 // no bound
	}
	s, err := wiring.Open(ctx, wiring.Config{Root: root, Logger: a.logger, Holder: a.command, LockTimeout: timeout,
		OnLockWait: func(holder string) {
			if a.stderr != nil {
				fmt.Fprintf(a.stderr, "strata: waiting for the store at %s, held by %s (Ctrl-C to give up; --lock-timeout bounds the wait)\n", root, holder)
			}
		}})
	if err != nil {
		return nil, err
	}
	e := &embedded{s: s, runner: jobs.NewRunner(s, jobs.Defaults{HostsDir: defaultHostsDir()})}
	res, err := e.runner.Run(ctx, jobs.Request{Info: &jobs.InfoRequest{}}, jobs.Env{})
	if err != nil {
		s.Close()
		return nil, err
	}
	e.info = *res.Info
	return e, nil
}

func (e *embedded) Containers() containers.Store { return e.s.DB.Containers() }
func (e *embedded) Content() content.Store       { return e.s.DB.ContentStore() }
func (e *embedded) Images() images.Store         { return e.s.DB.Images() }
func (e *embedded) Leases() leases.Manager       { return e.s.DB.Leases() }
func (e *embedded) Namespaces() namespaces.Store { return e.s.DB.Namespaces() }
func (e *embedded) Info() jobs.Info              { return e.info }
func (e *embedded) Address() string              { return "" }
func (e *embedded) OpensPaths() bool             { return true }
func (e *embedded) Close() error {
	e.stopServing()
	return e.s.Close()
}

func (e *embedded) Snapshotter(name string) snapshots.Snapshotter {
	if sn := e.s.Snapshotter(name); sn != nil {
		return sn
	}
	return nil // not a typed nil in the interface
}

func (e *embedded) Run(ctx context.Context, req jobs.Request, env jobs.Env) (jobs.Result, error) {
	return e.runner.Run(ctx, req, env)
}

// remote is the daemon's store.
type remote struct {
	address string
	conn    *grpc.ClientConn
	info    jobs.Info
}

// dialDaemon connects to the daemon at address and asks what its store is,
// which also tells whether it answers at all.
func dialDaemon(ctx context.Context, address string) (*remote, error) {
	conn, err := client.Dial(address)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := client.RunJob(pctx, conn, jobs.Request{Info: &jobs.InfoRequest{}}, jobs.Env{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &remote{address: address, conn: conn, info: *res.Info}, nil
}

func (r *remote) Containers() containers.Store { return client.NewContainerStore(r.conn) }
func (r *remote) Content() content.Store       { return client.NewContentStore(r.conn) }
func (r *remote) Images() images.Store         { return client.NewImageStore(r.conn) }
func (r *remote) Leases() leases.Manager       { return client.NewLeaseManager(r.conn) }
func (r *remote) Namespaces() namespaces.Store { return client.NewNamespaceStore(r.conn) }
func (r *remote) Info() jobs.Info              { return r.info }
func (r *remote) Address() string              { return r.address }
func (r *remote) OpensPaths() bool             { return os.Geteuid() == 0 }
func (r *remote) Close() error                 { return r.conn.Close() }

func (r *remote) Snapshotter(name string) snapshots.Snapshotter {
	if name == "" {
		name = r.info.DefaultSnapshotter
	}
	if !slices.Contains(r.info.Snapshotters, name) {
		return nil
	}
	return client.NewSnapshotter(r.conn, name)
}

func (r *remote) Run(ctx context.Context, req jobs.Request, env jobs.Env) (jobs.Result, error) {
	return client.RunJob(ctx, r.conn, req, env)
}

// daemonAddress says which daemon to use: --address, else (unless --root
// names a store to open here) $STRATA_ADDRESS, else the default socket if
// it exists. required is false for the default socket only: when nothing
// answers there the command runs embedded.
func (a *app) daemonAddress() (address string, required bool, err error) {
	switch {
	case a.addressSet && a.rootSet:
		return "", false, usagef("--root and --address exclude each other: --root opens a store in this process, --address uses the daemon's")
	case a.addressSet:
		if a.address == "" {
			return "", false, usagef("--address is empty")
		}
		return a.address, true, nil
	case a.rootSet:
		return "", false, nil
	}
	if env := os.Getenv(addressEnv); env != "" {
		return env, true, nil
	}
	if st, err := os.Stat(DefaultAddress); err == nil && st.Mode().Type() == os.ModeSocket {
		// A user outside the socket's group has a store of their own.
		if unix.Access(DefaultAddress, unix.W_OK) == nil {
			return DefaultAddress, false, nil
		}
		a.logger.Debug("no access to the daemon's socket; opening the store here", "address", DefaultAddress)
	}
	return "", false, nil
}

// withBackend runs fn over the store the command works on: opened here
// (embedded mode) or the daemon's, reached through its socket (see open).
// ctx is the command's, which the first SIGINT or SIGTERM cancels (run),
// in the namespace of --namespace. The store is closed when fn returns;
// an error closing it is returned when fn succeeded. Commands check their
// arguments before calling it, so that a usage error opens nothing.
func (a *app) withBackend(cmd *cobra.Command, fn func(ctx context.Context, s backend) error) error {
	return a.use(a.ctx(cmd), fn)
}

// withWholeStore is withBackend for the commands over the whole store
// rather than one namespace (namespaces, gc, fsck, plugins): ctx carries
// no namespace.
func (a *app) withWholeStore(cmd *cobra.Command, fn func(ctx context.Context, s backend) error) error {
	return a.use(cmd.Context(), fn)
}

// withImage is withBackend for a verb about one image: fn gets the image
// ref names (see resolveImage).
func (a *app) withImage(cmd *cobra.Command, ref string, fn func(ctx context.Context, s backend, img images.Image) error) error {
	return a.withBackend(cmd, func(ctx context.Context, s backend) error {
		img, err := resolveImage(ctx, s.Images(), a.namespace, ref)
		if err != nil {
			return err
		}
		return fn(ctx, s, img)
	})
}

// withSnapshotter is withBackend with the snapshotter sf names (the
// store's default when it names none) and its name. A name that is not a
// snapshotter's is a usage error, found before the store is opened.
func (a *app) withSnapshotter(cmd *cobra.Command, sf *snapshotterFlag, fn func(ctx context.Context, s backend, sn snapshots.Snapshotter, name string) error) error {
	if err := sf.check(); err != nil {
		return err
	}
	return a.withBackend(cmd, func(ctx context.Context, s backend) error {
		sn, name, err := sf.snapshotter(s)
		if err != nil {
			return err
		}
		return fn(ctx, s, sn, name)
	})
}

func (a *app) use(ctx context.Context, fn func(ctx context.Context, s backend) error) (err error) {
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := a.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return fn(ctx, s)
}

// open returns the store on first use; commands that need none never
// open one. Commands go through withBackend and its kin, which close it.
func (a *app) open(ctx context.Context) (backend, error) {
	if a.store != nil {
		return a.store, nil
	}
	address, required, err := a.daemonAddress()
	if err != nil {
		return nil, err
	}
	if address != "" {
		r, err := dialDaemon(ctx, address)
		if err == nil {
			a.store = r
			return r, nil
		}
		if required {
			return nil, fmt.Errorf("daemon at %s: %w", address, err)
		}
		// Said out loud: the user may have meant the daemon's store.
		a.logger.Warn("the daemon does not answer on its socket; opening the store here", "address", address, "root", a.root, "error", err)
	}
	e, err := openEmbedded(ctx, a.root, a)
	if err != nil {
		// A daemon holds the root (or a database in it): say where to go.
		var locked *wiring.LockedError
		daemon := errors.As(err, &locked) && locked.Daemon() ||
			locked == nil && errors.Is(err, errdefs.ErrUnavailable) && strings.Contains(err.Error(), "locked by another process")
		if daemon {
			return nil, fmt.Errorf("%w; if it is stratad, go through its socket: --address or $%s", err, addressEnv)
		}
		return nil, err
	}
	a.store = e
	return e, nil
}
