package jobs

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/push"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
)

// Registry says how to reach registries; credentials come from the Env.
type Registry struct {
	// PlainHTTP talks plain HTTP to registries hosts.toml does not
	// configure (loopback always may).
	PlainHTTP bool `json:"plain_http,omitempty"`
	// HostsDir is a directory of <host>/hosts.toml (containerd's certs.d);
	// empty means the runner's default.
	HostsDir string `json:"hosts_dir,omitempty"`
}

func (r Registry) resolver(env Env, d Defaults) *docker.Resolver {
	if r.HostsDir == "" {
		r.HostsDir = d.HostsDir
	}
	return docker.NewResolver(docker.Options{HostsDir: r.HostsDir, PlainHTTP: r.PlainHTTP, Logger: env.Logger,
		UserAgent: env.UserAgent, Credentials: env.Credentials})
}

// PullRequest fetches an image and unpacks it.
type PullRequest struct {
	Ref      string   `json:"ref"`
	Registry Registry `json:"registry"`
	// Platforms whose layers are fetched; empty means the host's.
	Platforms    []ocispec.Platform `json:"platforms,omitempty"`
	AllPlatforms bool               `json:"all_platforms,omitempty"`
	NoUnpack     bool               `json:"no_unpack,omitempty"`
	// UnpackPlatform defaults to the first of Platforms, or the host's.
	UnpackPlatform *ocispec.Platform `json:"unpack_platform,omitempty"`
	// Snapshotter defaults to the store's.
	Snapshotter string `json:"snapshotter,omitempty"`
	// MaxConcurrentDownloads defaults to the runner's.
	MaxConcurrentDownloads int `json:"max_concurrent_downloads,omitempty"`
}

// PushRequest pushes the local image Local (default Ref) as Ref.
type PushRequest struct {
	Ref      string   `json:"ref"`
	Local    string   `json:"local,omitempty"`
	Registry Registry `json:"registry"`
	// Platforms, when set, pushes only these platforms' manifest.
	Platforms             []ocispec.Platform `json:"platforms,omitempty"`
	AllowNonDistributable bool               `json:"allow_nondistributable,omitempty"`
	MaxConcurrentUploads  int                `json:"max_concurrent_uploads,omitempty"`
}

func (r *Runner) pull(ctx context.Context, req PullRequest, env Env) (Result, error) {
	ref, err := reference.Parse(req.Ref)
	if err != nil {
		return Result{}, err
	}
	if !req.NoUnpack {
		if req.Snapshotter, err = r.snapshotter(req.Snapshotter); err != nil {
			return Result{}, err
		}
	}
	if req.MaxConcurrentDownloads < 0 {
		return Result{}, fmt.Errorf("max concurrent downloads %d: want at least 1: %w", req.MaxConcurrentDownloads, errdefs.ErrInvalidArgument)
	}
	if req.MaxConcurrentDownloads == 0 {
		req.MaxConcurrentDownloads = r.defaults.MaxConcurrentDownloads
	}
	img, err := r.puller.Pull(ctx, ref, pull.Options{
		Platforms: req.Platforms, AllPlatforms: req.AllPlatforms, NoUnpack: req.NoUnpack,
		DiscardUnpackedLayers: r.defaults.DiscardUnpackedLayers,
		UnpackPlatform:        req.UnpackPlatform, Snapshotter: req.Snapshotter,
		MaxConcurrentDownloads: req.MaxConcurrentDownloads, UnpackParallelism: r.defaults.UnpackParallelism,
		Progress: env.Progress, Logger: env.Logger, Resolver: req.Registry.resolver(env, r.defaults),
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Images: []Image{{Name: img.Name, Digest: img.Target.Digest}}}, nil
}

func (r *Runner) push(ctx context.Context, req PushRequest, env Env) (Result, error) {
	ref, err := reference.Parse(req.Ref)
	if err != nil {
		return Result{}, err
	}
	local := ref
	if req.Local != "" {
		if local, err = reference.Parse(req.Local); err != nil {
			return Result{}, err
		}
	}
	if req.MaxConcurrentUploads < 0 {
		return Result{}, fmt.Errorf("max concurrent uploads %d: want at least 1: %w", req.MaxConcurrentUploads, errdefs.ErrInvalidArgument)
	}
	desc, err := push.New(r.store, req.Registry.resolver(env, r.defaults)).Push(ctx, local.String(), ref, push.Options{
		Platforms: req.Platforms, AllowNonDistributable: req.AllowNonDistributable,
		MaxConcurrentUploads: req.MaxConcurrentUploads, Progress: env.Progress, Logger: env.Logger,
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Images: []Image{{Name: ref.String(), Digest: desc.Digest}}}, nil
}
