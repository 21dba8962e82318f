// Package jobs is strata's long operations (pull, push, import, export,
// garbage collection, fsck) as requests over an open store. The CLI runs
// them itself in embedded mode; stratad runs the very same code for its
// clients (services/jobs), so a command behaves the same either way, and
// a job started through the daemon outlives the client that started it.
//
// Requests and results are plain data (JSON on the wire); what a job needs
// from whoever started it (credentials, an input or output stream, where
// progress goes) comes through an Env.
package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker/auth"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/unpack"
)

// Request is one job: exactly one field is set.
type Request struct {
	Pull   *PullRequest   `json:"pull,omitempty"`
	Push   *PushRequest   `json:"push,omitempty"`
	Import *ImportRequest `json:"import,omitempty"`
	Export *ExportRequest `json:"export,omitempty"`
	GC     *GCRequest     `json:"gc,omitempty"`
	Fsck   *FsckRequest   `json:"fsck,omitempty"`
	Info   *InfoRequest   `json:"info,omitempty"`
	Unpack *UnpackRequest `json:"unpack,omitempty"`
}

// Kind names the job for messages ("pull", "gc", …); "" when no field or
// more than one is set.
func (r Request) Kind() string {
	kind := ""
	for name, set := range map[string]bool{
		"pull": r.Pull != nil, "push": r.Push != nil, "import": r.Import != nil,
		"export": r.Export != nil, "gc": r.GC != nil, "fsck": r.Fsck != nil, "info": r.Info != nil, "unpack": r.Unpack != nil,
	} {
		if set {
			if kind != "" {
				return ""
			}
			kind = name
		}
	}
	return kind
}

// Long reports whether the job is one that outlives its client when run by
// the daemon (everything but the queries).
func (r Request) Long() bool { return r.Info == nil }

// GCRequest runs a garbage collection now.
type GCRequest struct {
	DryRun bool `json:"dry_run,omitempty"`
	// List fills the result's Removed with every object.
	List bool `json:"list,omitempty"`
	// Ingests drops every partial download no writer holds, whatever its
	// age or lease.
	Ingests bool `json:"ingests,omitempty"`
	// MinFree, when set, is this collection's free space threshold (see
	// metadata.ParseMinFree): partial downloads go, oldest first, until
	// the content store's filesystem has that much free.
	MinFree string `json:"min_free,omitempty"`
}

// options checks the request and turns it into the collection's options.
func (r GCRequest) options() (metadata.GCOptions, error) {
	o := metadata.GCOptions{DryRun: r.DryRun, List: r.List, DropIngests: r.Ingests}
	if r.MinFree != "" {
		m, err := metadata.ParseMinFree(r.MinFree)
		if err != nil {
			return o, err
		}
		o.MinFree = &m
	}
	return o, nil
}

// FsckRequest verifies (and with Repair mends) the store.
type FsckRequest struct {
	Repair bool `json:"repair,omitempty"`
}

// UnpackRequest unpacks the layers of an image manifest (what pull does
// after fetching) and labels its config with the top snapshot.
type UnpackRequest struct {
	Manifest ocispec.Descriptor `json:"manifest"`
	// Snapshotter defaults to the store's.
	Snapshotter string `json:"snapshotter,omitempty"`
}

// InfoRequest asks what the store is: its root and snapshotters.
type InfoRequest struct{}

// Info describes an open store.
type Info struct {
	Root               string   `json:"root"`
	Snapshotters       []string `json:"snapshotters"`
	DefaultSnapshotter string   `json:"default_snapshotter"`
	// OverlayUnavailable says why there is no overlayfs snapshotter.
	OverlayUnavailable string `json:"overlay_unavailable,omitempty"`
	// Rebase lists the snapshotters whose Commit accepts
	// snapshots.WithParent (snapshots.Rebaser).
	Rebase []string `json:"rebase,omitempty"`
	// Logs are the log rotation limits of the containers run on the
	// store (Defaults.Logs: stratad's [container_logs]); nil from a
	// daemon that does not say.
	Logs *logs.Limits `json:"logs,omitempty"`
}

// Image is an image a job recorded or pushed.
type Image struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
}

// Result is what a job produced; the field of its kind is set.
type Result struct {
	// Images: pull (the image), push (the pushed manifest or index under
	// the remote name), import (every image, in archive order).
	Images []Image              `json:"images,omitempty"`
	GC     *gc.Stats            `json:"gc,omitempty"`
	Fsck   *metadata.FsckReport `json:"fsck,omitempty"`
	Info   *Info                `json:"info,omitempty"`
	// ChainID is the top snapshot an unpack made or found.
	ChainID digest.Digest `json:"chain_id,omitempty"`
}

// Credentials answers a registry's request for credentials for host
// ("", "" for anonymous access).
type Credentials = auth.Credentials

// Env is what a job may use of whoever started it. Every field is optional.
type Env struct {
	Progress    progress.Sink
	Credentials Credentials
	// Warn receives what the job reports without failing (an image
	// imported for another platform is not unpacked, say).
	Warn func(msg string)
	// Input is the archive of an ImportRequest without a Path.
	Input io.Reader
	// Output receives the archive of an ExportRequest without a Path.
	Output io.Writer
	Logger *slog.Logger
	// UserAgent is sent to registries.
	UserAgent string
}

func (e *Env) defaults() {
	if e.Progress == nil {
		e.Progress = progress.Discard
	}
	if e.Credentials == nil {
		e.Credentials = func(context.Context, string) (string, string, error) { return "", "", nil }
	}
	if e.Warn == nil {
		e.Warn = func(string) {}
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
}

// Defaults fill in what requests leave zero: the configuration of the
// process running the jobs (stratad's config file, the CLI's environment).
type Defaults struct {
	// HostsDir is the registry hosts directory (certs.d).
	HostsDir string
	// MaxConcurrentDownloads bounds a pull's layer downloads (default 3).
	MaxConcurrentDownloads int
	// UnpackParallelism bounds the layers applied at once (default: the
	// number of CPUs, at least 2).
	UnpackParallelism int
	// DiscardUnpackedLayers frees the compressed layers of what a pull
	// unpacked (pull.Options.DiscardUnpackedLayers).
	DiscardUnpackedLayers bool
	// Logs are the containers' log rotation limits, which Info reports
	// (zero: logs.DefaultLimits).
	Logs logs.Limits
}

// Store is what jobs run on: *wiring.Store in this process, or
// client.Store over the daemon's socket (pull, push, import, export and
// unpack then run here against the daemon's stores).
type Store interface {
	Content() content.Store
	Images() images.Store
	Leases() leases.Holder
	// ResolveSnapshotter returns the snapshotter name ("" for the
	// default) and the name it resolved to; overlayfs where it does not
	// work is unavailable, saying why; a name the store does not have is
	// errdefs.ErrInvalidArgument.
	ResolveSnapshotter(name string) (string, snapshots.Snapshotter, error)
}

// Admin is the optional part of a Store that the gc, fsck and info jobs
// need: a store opened in this process has it; on any other such jobs
// return errdefs.ErrNotImplemented.
type Admin interface {
	GarbageCollect(ctx context.Context, o metadata.GCOptions) (gc.Stats, error)
	Fsck(ctx context.Context, repair bool) (metadata.FsckReport, error)
	SnapshotterNames() []string
	// Describe returns the store's root directory and why overlayfs is
	// not among its snapshotters (nil when it is).
	Describe() (root string, overlayUnavailable error)
}

// snapshotter resolves a request's snapshotter name ("" for the store's
// default).
func (r *Runner) snapshotter(name string) (string, error) {
	name, _, err := r.store.ResolveSnapshotter(name)
	return name, err
}

// Runner runs jobs on one store. Share one per process: concurrent pulls
// through it wait for one another instead of fetching a blob twice.
type Runner struct {
	store    Store
	puller   *pull.Puller
	defaults Defaults
}

// NewRunner returns a Runner for s.
func NewRunner(s Store, d Defaults) *Runner {
	return &Runner{store: s, puller: pull.New(s, nil), defaults: d}
}

// Run runs req. Requests are checked here too, not only by the CLI: the
// daemon takes them from any client.
func (r *Runner) Run(ctx context.Context, req Request, env Env) (Result, error) {
	env.defaults()
	s := r.store
	admin, _ := s.(Admin)
	switch kind := req.Kind(); kind {
	case "pull":
		return r.pull(ctx, *req.Pull, env)
	case "push":
		return r.push(ctx, *req.Push, env)
	case "import":
		return r.importArchive(ctx, *req.Import, env)
	case "export":
		return Result{}, r.export(ctx, *req.Export, env)
	case "gc", "fsck", "info":
		if admin == nil {
			return Result{}, fmt.Errorf("%s job: this store runs none: %w", kind, errdefs.ErrNotImplemented)
		}
	}
	switch req.Kind() {
	case "gc":
		o, err := req.GC.options()
		if err != nil {
			return Result{}, err
		}
		st, err := admin.GarbageCollect(ctx, o)
		if err != nil {
			return Result{}, err
		}
		return Result{GC: &st}, nil
	case "fsck":
		rep, err := admin.Fsck(ctx, req.Fsck.Repair)
		if err != nil {
			return Result{}, err
		}
		return Result{Fsck: &rep}, nil
	case "unpack":
		name, err := r.snapshotter(req.Unpack.Snapshotter)
		if err != nil {
			return Result{}, err
		}
		top, err := unpack.Manifest(ctx, s, req.Unpack.Manifest, unpack.Options{Snapshotter: name,
			Parallelism: r.defaults.UnpackParallelism, Progress: env.Progress, Logger: env.Logger})
		if err != nil {
			return Result{}, err
		}
		return Result{ChainID: top}, nil
	case "info":
		def, _, err := s.ResolveSnapshotter("")
		if err != nil {
			return Result{}, err
		}
		root, overlay := admin.Describe()
		limits := r.defaults.Logs
		if limits == (logs.Limits{}) {
			limits = logs.DefaultLimits()
		}
		info := &Info{Root: root, Snapshotters: admin.SnapshotterNames(), DefaultSnapshotter: def, Logs: &limits}
		if overlay != nil {
			info.OverlayUnavailable = overlay.Error()
		}
		for _, name := range info.Snapshotters {
			if _, sn, err := s.ResolveSnapshotter(name); err == nil && snapshots.CanRebase(sn) {
				info.Rebase = append(info.Rebase, name)
			}
		}
		return Result{Info: info}, nil
	}
	return Result{}, fmt.Errorf("job request: want exactly one of pull, push, import, export, gc, fsck, unpack, info: %w", errdefs.ErrInvalidArgument)
}
