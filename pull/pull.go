// Package pull is strata's pull pipeline: resolve a reference, fetch the
// image's index, manifests and configs, then download the layers (bounded,
// one download per digest however many pulls want it) while unpacking them
// from the stream into snapshots, verified, committed in chain order, and
// finally record the image. A lease holds everything until then, so a
// failed or cancelled pull leaves nothing that garbage collection keeps.
package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/snapshots"
)

// Options configure one pull.
type Options struct {
	// Platforms whose layers are fetched; empty means the host's.
	Platforms []ocispec.Platform
	// AllPlatforms fetches the layers of every platform.
	AllPlatforms bool
	// NoUnpack leaves the layers packed.
	NoUnpack bool
	// DiscardUnpackedLayers drops the layer references of the manifests
	// unpacked (images.DiscardLayers), so that the compressed layers are
	// freed once the pull's lease goes: stratad's discard_unpacked_layers.
	DiscardUnpackedLayers bool
	// UnpackPlatform is unpacked; nil means the first of Platforms, or the
	// host's.
	UnpackPlatform *ocispec.Platform
	// Snapshotter to unpack into; "" for the store's default.
	Snapshotter string
	// MaxConcurrentDownloads bounds layer downloads (default 3).
	MaxConcurrentDownloads int
	Progress               progress.Sink
	Logger                 *slog.Logger
	// UnpackParallelism bounds the layers applied at once (default: the
	// number of CPUs, at least 2).
	UnpackParallelism int
	// Resolver, when set, replaces the Puller's for this pull: a daemon
	// shares one Puller among clients that bring their own credentials.
	Resolver *docker.Resolver
}

// Store is what a pull works on: *wiring.Store in this process, or
// client.Store over the daemon's socket.
type Store interface {
	Content() content.Store
	Images() images.Store
	// Leases must hold what exists in one step (leases.Holder): a pull
	// keeps what it finds present until its image is recorded.
	Leases() leases.Holder
	// ResolveSnapshotter returns the snapshotter name ("" for the
	// default) and the name it resolved to.
	ResolveSnapshotter(name string) (string, snapshots.Snapshotter, error)
}

// Puller pulls into one store. Share one per process: it makes concurrent
// pulls of the same blobs and layers wait for one another instead of
// transferring or unpacking twice.
type Puller struct {
	store    Store
	resolver *docker.Resolver
	blobs    flights
	layers   flights
}

// New returns a Puller for st, fetching through r.
func New(st Store, r *docker.Resolver) *Puller {
	return &Puller{store: st, resolver: r}
}

type nopSink struct{}

func (nopSink) Update(progress.Update) {}

// pull is the state of one Pull.
type pull struct {
	*Puller
	o     Options
	ref   reference.Reference
	repo  *docker.Repository
	sink  progress.Sink
	log   *slog.Logger
	cs    content.Store
	lease leases.Lease
	// source is the distribution source label's key and value.
	sourceKey, sourceVal string
	// ingests are the refs of the partial downloads the pull wrote.
	ingestMu sync.Mutex
	ingests  map[string]struct{}
}

// Pull fetches ref (and unpacks it unless told not to) and returns the
// image record it wrote.
//
// ref is parsed and normalised once, where the name enters (the CLI, the
// job request): the pipeline takes it as it is (reference.Parse).
func (p *Puller) Pull(ctx context.Context, ref reference.Reference, o Options) (images.Image, error) {
	r := p.resolver
	if o.Resolver != nil {
		r = o.Resolver
	}
	if r == nil {
		return images.Image{}, fmt.Errorf("pull %s: no registry resolver: %w", ref, errdefs.ErrInvalidArgument)
	}
	repo, err := r.Repository(ref)
	if err != nil {
		return images.Image{}, err
	}
	if o.MaxConcurrentDownloads <= 0 {
		o.MaxConcurrentDownloads = 3
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []ocispec.Platform{images.DefaultPlatform()}
	}
	pl := &pull{Puller: p, o: o, ref: ref, repo: repo, sink: o.Progress, log: o.Logger,
		cs: p.store.Content(), sourceKey: lbl.DistributionSourcePrefix + ref.Domain, sourceVal: ref.Path}
	if pl.sink == nil {
		pl.sink = nopSink{}
	}
	if pl.log == nil {
		pl.log = slog.New(slog.DiscardHandler)
	}
	pl.sink.Update(progress.Update{ID: ref.String(), Kind: "reference", Status: progress.Resolving})
	root, err := repo.Resolve(ctx)
	if err != nil {
		pl.sink.Update(progress.Update{ID: ref.String(), Kind: "reference", Status: progress.Failed, Err: err})
		return images.Image{}, err
	}
	pl.sink.Update(progress.Update{ID: ref.String(), Kind: "reference", Status: progress.Done})

	lm := p.store.Leases()
	pl.lease, err = lm.Create(ctx, leases.WithExpiration(24*time.Hour), leases.WithLabels(map[string]string{lbl.LeasePull: ref.String()}))
	if err != nil {
		return images.Image{}, err
	}
	defer func() {
		if err := lm.Delete(context.WithoutCancel(ctx), pl.lease); err != nil {
			pl.log.Warn("drop the pull's lease", "lease", pl.lease.ID, "error", err)
		}
	}()
	ctx = leases.WithLease(ctx, pl.lease.ID)

	if err := pl.fetchTree(ctx, root, 0); err != nil {
		return images.Image{}, pl.failed(ctx, err)
	}
	if err := pl.fetchLayers(ctx, root); err != nil {
		return images.Image{}, pl.failed(ctx, err)
	}
	img := images.Image{Name: ref.String(), Target: root}
	created, _, err := images.Record(ctx, p.store.Images(), img)
	if err != nil {
		return images.Image{}, err
	}
	if o.DiscardUnpackedLayers && !o.NoUnpack {
		// Still under the lease, which holds the layers: the collection
		// its deletion schedules frees them.
		res, err := images.DiscardLayers(ctx, pl.cs, root)
		if err != nil {
			return created, fmt.Errorf("pull %s: discard unpacked layers: %w", ref, err)
		}
		pl.log.Debug("discarded unpacked layers", "ref", ref.String(), "manifests", len(res.Manifests))
	}
	return created, nil
}

// fetchTree stores desc (an index or manifest) and, below it, every
// manifest and config, whatever the platform: they are small, and with
// them a one-platform pull can be checked, pushed or exported and say
// exactly what it lacks.
func (pl *pull) fetchTree(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	if depth > 8 {
		return fmt.Errorf("image %s: indexes nested more than 8 deep: %w", pl.ref, errdefs.ErrInvalidArgument)
	}
	body, err := pl.smallBlob(ctx, desc, images.MaxManifestSize, pl.repo.FetchManifest, pl.manifestLabels(desc))
	if err != nil {
		return err
	}
	switch {
	case images.IsIndex(desc.MediaType):
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return fmt.Errorf("index %s of %s: %w: %w", desc.Digest, pl.ref, err, errdefs.ErrInvalidArgument)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, m := range idx.Manifests {
			if !images.IsIndex(m.MediaType) && !images.IsManifest(m.MediaType) {
				continue
			}
			g.Go(func() error { return pl.fetchTree(gctx, m, depth+1) })
		}
		return g.Wait()
	case images.IsManifest(desc.MediaType):
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("manifest %s of %s: %w: %w", desc.Digest, pl.ref, err, errdefs.ErrInvalidArgument)
		}
		fetchConfig := func(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
			b, err := pl.repo.FetchBlob(ctx, d, images.MaxConfigSize)
			if err != nil {
				return nil, fmt.Errorf("config of %s: %w", pl.ref, err)
			}
			return b, nil
		}
		_, err := pl.smallBlob(ctx, m.Config, images.MaxConfigSize, fetchConfig, func([]byte) (map[string]string, error) { return nil, nil })
		return err
	default:
		return fmt.Errorf("%s: unsupported media type %q: %w", pl.ref, desc.MediaType, errdefs.ErrNotImplemented)
	}
}

// manifestLabels returns the GC labels of the index or manifest desc
// (images.ChildrenLabels), after checking that its body says the media
// type its descriptor does.
func (pl *pull) manifestLabels(desc ocispec.Descriptor) func([]byte) (map[string]string, error) {
	return func(body []byte) (map[string]string, error) {
		what := "manifest"
		switch {
		case images.IsIndex(desc.MediaType):
			what = "index"
		case !images.IsManifest(desc.MediaType):
			return map[string]string{}, nil
		}
		var doc struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("%s %s of %s: %w: %w", what, desc.Digest, pl.ref, err, errdefs.ErrInvalidArgument)
		}
		if doc.MediaType != "" && doc.MediaType != desc.MediaType {
			return nil, fmt.Errorf("%s %s of %s: its mediaType %q differs from %q: %w", what, desc.Digest, pl.ref, doc.MediaType, desc.MediaType, errdefs.ErrInvalidArgument)
		}
		labels, err := images.ChildrenLabels(desc, body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pl.ref, err)
		}
		if labels == nil {
			labels = map[string]string{}
		}
		return labels, nil
	}
}

// smallBlob returns the bytes of desc (a manifest, index or config): from
// the store, or else fetched (once, however many pulls want it at the
// same time), verified, and stored with the labels labelsOf gives.
func (pl *pull) smallBlob(ctx context.Context, desc ocispec.Descriptor, limit int64,
	fetch func(context.Context, ocispec.Descriptor) ([]byte, error),
	labelsOf func([]byte) (map[string]string, error)) ([]byte, error) {
	for {
		// Hold first: a blob read and then held could be collected in
		// between, and the image recorded without it.
		err := pl.hold(ctx, desc.Digest)
		if err == nil {
			b, err := content.ReadBlob(ctx, pl.cs, desc, limit)
			if !errdefs.IsNotFound(err) {
				return b, err
			}
			// A record whose blob is gone (damage fsck reports): fetch it.
		} else if !errdefs.IsNotFound(err) {
			return nil, err
		}
		f, owner := pl.blobs.start(desc.Digest.String())
		if !owner {
			if err := f.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		b, err := fetch(ctx, desc)
		if err == nil {
			var labels map[string]string
			if labels, err = labelsOf(b); err == nil {
				err = pl.put(ctx, desc, b, labels)
			}
		}
		pl.blobs.finish(desc.Digest.String(), f)
		return b, err
	}
}

// put writes a small verified blob with labels (and the distribution
// source), under the pull's lease.
func (pl *pull) put(ctx context.Context, desc ocispec.Descriptor, body []byte, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	labels[pl.sourceKey] = pl.sourceVal
	pl.noteIngest("pull-" + desc.Digest.String())
	return content.WriteBlob(ctx, pl.cs, "pull-"+desc.Digest.String(), bytes.NewReader(body), desc, content.WithLabels(labels))
}

// hold adds blob d to the pull's lease if the namespace has it, so that
// nothing collects it before the image record exists. The check and the
// hold are one step: errdefs.ErrNotFound means it is not there (any more),
// and must be fetched.
func (pl *pull) hold(ctx context.Context, d digest.Digest) error {
	return pl.store.Leases().HoldExisting(ctx, pl.lease, leases.Resource{ID: d.String(), Type: "content"})
}
