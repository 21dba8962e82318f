package engine

import (
	"context"
	"fmt"
	"log/slog"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/volumes"
)

// Store is what the engine takes of a store: the daemon's, through its
// socket, or one opened in this process.
type Store interface {
	Containers() containers.Store
	Images() images.Store
	Content() content.Store
	Leases() leases.Manager
	// Snapshotter returns the snapshotter by name ("" for the default),
	// or nil when there is none by that name.
	Snapshotter(name string) snapshots.Snapshotter
}

// Network gives containers their network (network.Manager); a container
// is id in the namespace of ctx.
type Network interface {
	// Setup makes the endpoint, held by this process until Hold.
	Setup(ctx context.Context, id string, req network.Request) (*network.Endpoint, error)
	// Hold hands the endpoint to the task's init process pid, so that a
	// daemon's cleanup keeps it while the container runs.
	Hold(ctx context.Context, id string, pid int) error
	Teardown(ctx context.Context, id string) error
}

// Volumes binds named volumes (volumes.Store): BindAll turns -v
// NAME:/dst[:ro] and /dst arguments into bind mounts, making a volume that
// does not exist (an anonymous one for /dst) and filling a new one from
// the root filesystem at dst; RemoveAnonymous removes the anonymous
// volumes a removed container's mounts bind, unless another container
// uses them.
type Volumes interface {
	BindAll(ctx context.Context, args []string, rootfs []mount.Mount, opts volumes.BindOptions) ([]specs.Mount, error)
	RemoveAnonymous(ctx context.Context, mounts []specs.Mount) ([]string, error)
}

// UnpackFunc unpacks the layers of an image manifest into the snapshotter
// and returns the chain ID of the top layer (the pull pipeline's unpack
// job).
type UnpackFunc func(ctx context.Context, manifest ocispec.Descriptor, snapshotter string) (digest.Digest, error)

// Config is what an Engine works on.
type Config struct {
	Store Store
	Tasks tasksapi.TasksClient
	// Network is nil where there is none: only --network host and none
	// work then.
	Network Network
	// Volumes is nil where there are none: -v NAME:/dst is refused then.
	Volumes Volumes
	Unpack  UnpackFunc
	// Snapshotter names the snapshotter of new containers ("" for the
	// store's default); the name is recorded in the container.
	Snapshotter string
	// Runtime is the runtime of new containers; "" is
	// io.containerd.runc.v2.
	Runtime string
	// LogRoot is the root under which containers' logs live (logs.Dir);
	// Remove removes a container's log directory there. "" keeps none.
	LogRoot string
	Logger  *slog.Logger
}

// Engine runs containers.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an engine over cfg.
func New(cfg Config) *Engine {
	if cfg.Runtime == "" {
		cfg.Runtime = "io.containerd.runc.v2"
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: l}
}

// grpcCtx returns ctx carrying its namespace the way the tasks service
// reads it.
func grpcCtx(ctx context.Context) (context.Context, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, namespaces.GRPCHeader, ns), nil
}

func (e *Engine) snapshotter(name string) (snapshots.Snapshotter, error) {
	sn := e.cfg.Store.Snapshotter(name)
	if sn == nil {
		return nil, fmt.Errorf("snapshotter %q: not found", name)
	}
	return sn, nil
}
