// Package images serves the Kubernetes CRI image service
// (k8s.io/cri-api runtime.v1.ImageService) over strata's store, with the
// conventions kubelet and crictl expect from containerd's CRI plugin:
//
//   - everything lives in the containerd namespace "k8s.io";
//
//   - an image's CRI id is the digest of its config (for the host's
//     platform); a pull records the image under three names, all pointing
//     at the pulled root (index or manifest):
//
//     docker.io/library/busybox:1.36          repo:tag (absent for a pull by digest)
//     docker.io/library/busybox@sha256:<root> repo@digest
//     sha256:<config>                         the id
//
//   - each name carries io.cri-containerd.image=managed, and pinned images
//     (the configured sandbox image, the pinned list) also
//     io.cri-containerd.pinned=pinned;
//
//   - an image is every name whose root resolves to the same config
//     digest: RepoTags and RepoDigests come from those names, RemoveImage
//     removes them all.
//
// Pulls go through the same job runner as `strata pull` (jobs.Request
// with a Pull), with the request's AuthConfig as the credential source
// and a progress watchdog that cancels a pull moving fewer bytes than a
// minimum rate for a configured time. Progress is published as events and
// counted in metrics, since CRI itself has no progress call.
package images

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/reference"
)

// Namespace is where the CRI keeps everything, as containerd's CRI plugin.
const Namespace = "k8s.io"

// Defaults of Config.
const (
	DefaultPullProgressTimeout = 5 * time.Minute
	// DefaultPullMinRate is the rate below which a pull makes no progress
	// in the watchdog's eyes: a registry that sends a byte a minute does
	// not keep a pull alive for ever (containerd counts any byte).
	DefaultPullMinRate = 1024
)

// Config configures the service.
type Config struct {
	// SandboxImage is the pause image; it is pinned.
	SandboxImage string
	// PinnedImages are pinned too: kubelet's image GC never removes them.
	PinnedImages []string
	// PullProgressTimeout cancels a pull that moved fewer than
	// PullMinRate bytes per second for this long (0: the default;
	// negative: never).
	PullProgressTimeout time.Duration
	// PullMinRate is in bytes per second (0: the default; negative: any
	// byte is progress).
	PullMinRate int64
	// SnapshotterRoot and ContentRoot are the directories ImageFsInfo
	// measures: the default snapshotter's and the blob store's.
	SnapshotterRoot, ContentRoot string
	Logger                       *slog.Logger
	// StartJob, when set, makes each pull one of the daemon's jobs: its
	// context (the call's values, cancelled when the daemon gives up on
	// its jobs), and a release to call when it ends, so that the daemon's
	// Stop waits for it before the store closes. It fails once the daemon
	// is stopping.
	StartJob func(call context.Context) (context.Context, context.CancelFunc, func(), error)
}

// Runner runs jobs; *jobs.Runner is one. Pulls go through it so that the
// CRI pulls exactly as `strata pull` does.
type Runner interface {
	Run(ctx context.Context, req jobs.Request, env jobs.Env) (jobs.Result, error)
}

// Publisher publishes an event in the namespace of ctx; the daemon's event
// exchange is one.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message) error
}

// Service is the CRI image service.
type Service struct {
	runtime.UnimplementedImageServiceServer

	cfg     Config
	images  images.Store
	content content.Provider
	runner  Runner
	events  Publisher
	log     *slog.Logger
	pinned  map[string]bool // normalised references

	metrics pullMetrics
	cache   partsCache
	fsInfo  fsInfoCache

	// mu orders the name updates of pulls and removals, so that a pull's
	// three names appear together and a removal takes them all.
	mu sync.Mutex
}

var _ runtime.ImageServiceServer = (*Service)(nil)

// New returns the service over the image records is and the blobs of p
// (both namespaced: the service uses Namespace), pulling through r and
// publishing progress on ev (nil: no events). It returns
// errdefs.ErrInvalidArgument for a pinned reference it cannot parse.
func New(is images.Store, p content.Provider, r Runner, ev Publisher, cfg Config) (*Service, error) {
	if cfg.PullProgressTimeout == 0 {
		cfg.PullProgressTimeout = DefaultPullProgressTimeout
	}
	if cfg.PullMinRate == 0 {
		cfg.PullMinRate = DefaultPullMinRate
	}
	if cfg.PullMinRate < 0 {
		cfg.PullMinRate = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, images: is, content: p, runner: r, events: ev, log: cfg.Logger, pinned: map[string]bool{}}
	pins := cfg.PinnedImages
	if cfg.SandboxImage != "" {
		pins = append([]string{cfg.SandboxImage}, pins...)
	}
	for _, pin := range pins {
		ref, err := reference.Parse(pin)
		if err != nil {
			return nil, fmt.Errorf("pinned image: %w", err)
		}
		s.pinned[ref.String()] = true
	}
	return s, nil
}

// withNamespace puts the CRI's namespace on ctx, whatever the client sent.
func withNamespace(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// specImage returns the image a request names, or InvalidArgument.
func specImage(spec *runtime.ImageSpec) (string, error) {
	if spec == nil || spec.GetImage() == "" {
		return "", fmt.Errorf("image spec: no image given: %w", errdefs.ErrInvalidArgument)
	}
	return spec.GetImage(), nil
}
