// Package push is strata's push pipeline: it walks a local image from its
// root (index → manifests → config and layers), checks that everything it
// is about to push is in the content store, then sends the blobs (skipping
// those the registry has, mounting those another repository of the same
// registry has, uploading the rest, bounded), the manifests by digest, and
// the root last under the tag. The order is the one registries verify:
//
//	configs and layers     HEAD → skip | POST ?mount= → mounted | upload
//	image manifests        by digest, once all blobs are there
//	nested indexes         by digest, children first
//	root                   under the tag (or its digest)
//
// Nothing is written to the local store but the distribution source label
// (containerd.io/distribution.source.<host> = repo[,repo…]) on the blobs
// pushed, which later pushes to the same registry mount from.
package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/wiring"
)

// maxIndexDepth bounds nested indexes, as the images package does.
const maxIndexDepth = 8

// attestationAnnotation marks BuildKit's attestation manifests in an index.
const attestationAnnotation = "vnd.docker.reference.type"

// Options configure one push.
type Options struct {
	// Platforms, when set, pushes only the manifest of these platforms. An
	// index cannot be pushed in part (registries refuse an index naming
	// manifests they lack, and a new index would have another digest), so
	// with an index as root exactly one platform may be given: its manifest
	// is pushed and tagged itself, as `docker push --platform` does. Empty
	// pushes the whole image, which must then be complete locally.
	Platforms []ocispec.Platform
	// AllowNonDistributable pushes non-distributable (foreign) layers too;
	// by default they are skipped, as docker does.
	AllowNonDistributable bool
	// MaxConcurrentUploads bounds the blobs and manifests in flight
	// (default 3).
	MaxConcurrentUploads int
	Progress             progress.Sink
	Logger               *slog.Logger
}

// Pusher pushes images of one store. It is safe for concurrent use.
type Pusher struct {
	store    *wiring.Store
	resolver *docker.Resolver
}

// New returns a Pusher for the images of st, pushing through r.
func New(st *wiring.Store, r *docker.Resolver) *Pusher {
	return &Pusher{store: st, resolver: r}
}

// push is the state of one Push.
type push struct {
	o     Options
	local string
	ref   reference.Reference
	repo  *docker.Repository
	cs    content.Store
	sink  progress.Sink
	log   *slog.Logger
	// sourceKey is the distribution source label of the target registry.
	sourceKey string
	uploaded  atomic.Int64
	resolver  *docker.Resolver
}

// node is a manifest or an index to push, with its exact bytes.
type node struct {
	desc ocispec.Descriptor
	kind string // "manifest" or "index"
	body []byte
	// skipped lists the non-distributable layers it refers to that are
	// not pushed.
	skipped []digest.Digest
}

// blob is a config or layer to push.
type blob struct {
	desc ocispec.Descriptor
	kind string // "config" or "layer"
	// from lists, for a layer not in the store (discarded after unpack),
	// the repositories its manifest came from: it is mounted or streamed
	// from there.
	from []reference.Reference
}

// plan is everything one push sends, in order.
type plan struct {
	blobs []blob
	// manifests are the image manifests under the root; indexes the
	// nested indexes, children before parents. Neither holds the root.
	manifests []*node
	indexes   []*node
	root      *node
	// skipped are the non-distributable layers left out.
	skipped map[digest.Digest]bool
	// missing describes, per manifest, what is not in the content store.
	missing  []string
	complete []string // platforms of the manifests that are complete
	// seen: manifests and indexes planned; queued: blobs planned.
	seen, queued map[digest.Digest]bool
}

// Push pushes the local image named local (an image record's name, a
// normalised reference such as "docker.io/library/alpine:3.20") to ref,
// which may name another repository or registry, and returns the root
// descriptor pushed: the image's target, or with o.Platforms the manifest
// picked from its index.
//
// Errors: errdefs.ErrNotFound when there is no image local or it has no
// manifest for o.Platforms; errdefs.ErrFailedPrecondition when content the
// push needs is not in the store (a one-platform pull of an index), before
// anything is sent; errdefs.ErrInvalidArgument for a bad ref, a ref whose
// digest is not the root's, or several platforms of an index; the
// registry client's errors, naming the blob or manifest and the registry,
// otherwise.
func (p *Pusher) Push(ctx context.Context, local string, ref string, o Options) (ocispec.Descriptor, error) {
	start := time.Now()
	r, err := reference.Parse(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if o.MaxConcurrentUploads <= 0 {
		o.MaxConcurrentUploads = 3
	}
	ps := &push{o: o, local: local, ref: r, cs: p.store.DB.ContentStore(), sink: o.Progress, log: o.Logger,
		sourceKey: labels.DistributionSourcePrefix + r.Domain, resolver: p.resolver}
	if ps.sink == nil {
		ps.sink = progress.Discard
	}
	if ps.log == nil {
		ps.log = slog.New(slog.DiscardHandler)
	}
	img, err := p.image(ctx, local)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	pl, err := ps.plan(ctx, img.Target)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if r.Digest != "" && r.Digest != pl.root.desc.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("push %s to %s: the reference pins digest %s, the image is %s: %w",
			local, r, r.Digest, pl.root.desc.Digest, errdefs.ErrInvalidArgument)
	}
	if ps.repo, err = p.resolver.Repository(r); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := ps.run(ctx, pl); err != nil {
		return ocispec.Descriptor{}, err
	}
	ps.label(ctx, pl)
	ps.log.Info("push done", "ref", r.String(), "digest", pl.root.desc.Digest, "bytes", ps.uploaded.Load(),
		"duration_ms", time.Since(start).Milliseconds())
	return pl.root.desc, nil
}

// image returns the image record local; a name that is not stored as
// given is tried normalised ("alpine" → "docker.io/library/alpine:latest").
func (p *Pusher) image(ctx context.Context, local string) (images.Image, error) {
	is := p.store.DB.Images()
	img, err := is.Get(ctx, local)
	if errdefs.IsNotFound(err) {
		if r, perr := reference.Parse(local); perr == nil && r.String() != local {
			if normalised, err := is.Get(ctx, r.String()); err == nil {
				return normalised, nil
			}
		}
	}
	if err != nil {
		return images.Image{}, fmt.Errorf("image %q: %w", local, err)
	}
	return img, nil
}

// plan walks the image from target and decides what to push; it fails,
// naming everything missing, when the store lacks a part.
func (ps *push) plan(ctx context.Context, target ocispec.Descriptor) (*plan, error) {
	pl := &plan{skipped: map[digest.Digest]bool{}, seen: map[digest.Digest]bool{}, queued: map[digest.Digest]bool{}}
	if len(ps.o.Platforms) > 0 {
		if images.IsIndex(target.MediaType) && len(ps.o.Platforms) > 1 {
			names := make([]string, len(ps.o.Platforms))
			for i, p := range ps.o.Platforms {
				names[i] = images.FormatPlatform(p)
			}
			return nil, fmt.Errorf("push %s: %s is an index; pushing %s would need a new index with another digest: "+
				"push one platform at a time, or the whole image without platforms: %w",
				ps.local, target.Digest, strings.Join(names, ", "), errdefs.ErrInvalidArgument)
		}
		m := images.Any(ps.o.Platforms...)
		descs, err := images.Manifests(ctx, ps.cs, target, m)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", ps.local, err)
		}
		if len(descs) == 0 {
			_, _, err := images.Manifest(ctx, ps.cs, target, m)
			if err == nil {
				err = fmt.Errorf("no manifest for %s: %w", m, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("push %s: %w", ps.local, err)
		}
		// The best match, pushed as the root (for a manifest root it is
		// the root itself).
		n, err := ps.planManifest(ctx, pl, descs[0])
		if err != nil {
			return nil, err
		}
		pl.root = n
	} else {
		n, err := ps.walk(ctx, pl, target, 0)
		if err != nil {
			return nil, err
		}
		pl.root = n
	}
	if len(pl.missing) > 0 {
		hint := "pull the image with --all-platforms first"
		switch {
		case len(ps.o.Platforms) > 0:
			hint = fmt.Sprintf("pull the image with --platform %s first", images.FormatPlatform(ps.o.Platforms[0]))
		case len(pl.complete) > 0:
			hint = fmt.Sprintf("push a platform it has with --platform (%s), or %s", strings.Join(pl.complete, ", "), hint)
		}
		return nil, fmt.Errorf("push %s: the content store lacks parts of the image: %s; %s: %w",
			ps.local, strings.Join(pl.missing, "; "), hint, errdefs.ErrFailedPrecondition)
	}
	// The root goes last, under the tag: not among the others.
	pl.manifests = slices.DeleteFunc(pl.manifests, func(n *node) bool { return n == pl.root })
	pl.indexes = slices.DeleteFunc(pl.indexes, func(n *node) bool { return n == pl.root })
	return pl, nil
}

// plainDesc keeps what a registry and an image record need of a
// descriptor: its media type, digest and size.
func plainDesc(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// walk plans desc, an index or manifest, and what it refers to; children
// are planned before it. A missing part is recorded in pl.missing, not
// returned, so that one error can list them all.
func (ps *push) walk(ctx context.Context, pl *plan, desc ocispec.Descriptor, depth int) (*node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case images.IsManifest(desc.MediaType):
		return ps.planManifest(ctx, pl, desc)
	case images.IsIndex(desc.MediaType):
	case images.IsSchema1(desc.MediaType):
		return nil, fmt.Errorf("push %s: manifest %s is Docker schema 1, which strata does not push: %w", ps.local, desc.Digest, errdefs.ErrNotImplemented)
	default:
		return nil, fmt.Errorf("push %s: %s has media type %q, which is neither an image index nor a manifest: %w",
			ps.local, desc.Digest, desc.MediaType, errdefs.ErrNotImplemented)
	}
	if depth >= maxIndexDepth {
		return nil, fmt.Errorf("push %s: index %s: indexes nested deeper than %d: %w", ps.local, desc.Digest, maxIndexDepth, errdefs.ErrInvalidArgument)
	}
	if pl.seen[desc.Digest] {
		return nil, nil
	}
	pl.seen[desc.Digest] = true
	idx, err := images.ReadIndex(ctx, ps.cs, desc)
	if errdefs.IsNotFound(err) {
		pl.missing = append(pl.missing, fmt.Sprintf("index %s", desc.Digest))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ps.local, err)
	}
	body, err := content.ReadBlob(ctx, ps.cs, desc, images.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("push %s: index %s: %w", ps.local, desc.Digest, err)
	}
	for _, child := range idx.Manifests {
		if _, err := ps.walk(ctx, pl, child, depth+1); err != nil {
			return nil, err
		}
	}
	n := &node{desc: plainDesc(desc), kind: "index", body: body}
	pl.indexes = append(pl.indexes, n)
	return n, nil
}

// planManifest plans the image manifest desc, its config and layers.
func (ps *push) planManifest(ctx context.Context, pl *plan, desc ocispec.Descriptor) (*node, error) {
	if pl.seen[desc.Digest] {
		return nil, nil
	}
	pl.seen[desc.Digest] = true
	what := "manifest " + desc.Digest.String()
	attestation := desc.Annotations[attestationAnnotation] == "attestation-manifest"
	if desc.Platform != nil {
		what = fmt.Sprintf("%s (manifest %s)", images.FormatPlatform(*desc.Platform), desc.Digest)
	}
	if attestation {
		what = fmt.Sprintf("attestation manifest %s", desc.Digest)
	}
	m, err := images.ReadManifest(ctx, ps.cs, desc)
	if errdefs.IsNotFound(err) {
		pl.missing = append(pl.missing, what+": the manifest itself")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ps.local, err)
	}
	body, err := content.ReadBlob(ctx, ps.cs, desc, images.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("push %s: manifest %s: %w", ps.local, desc.Digest, err)
	}
	if desc.Platform == nil {
		if cfg, err := images.ReadConfig(ctx, ps.cs, m.Config); err == nil && cfg.OS != "" {
			what = fmt.Sprintf("%s (manifest %s)", images.FormatPlatform(cfg.Platform), desc.Digest)
		}
	}
	n := &node{desc: plainDesc(desc), kind: "manifest", body: body}
	var missing []string
	// Layers discarded after unpacking (no longer named by the manifest's
	// labels, its config unpacked) come again from where the manifest
	// came from: its distribution source labels. Other missing layers (a
	// platform never pulled) stay missing.
	var sources []reference.Reference
	var referenced map[digest.Digest]bool
	if info, err := ps.cs.Info(ctx, desc.Digest); err != nil {
		return nil, fmt.Errorf("push %s: manifest %s: %w", ps.local, desc.Digest, err)
	} else if unpacked, err := images.Unpacked(ctx, ps.cs, m.Config.Digest); err != nil {
		return nil, fmt.Errorf("push %s: config %s: %w", ps.local, m.Config.Digest, err)
	} else if unpacked {
		referenced = images.ReferencedByLabels(info.Labels)
		for host, repos := range images.DistributionSources(info.Labels) {
			for _, repo := range repos {
				if r, err := reference.Parse(host + "/" + repo); err == nil {
					sources = append(sources, r)
				}
			}
		}
	}
	parts := append([]blob{{desc: m.Config, kind: "config"}}, layerBlobs(m.Layers)...)
	for _, b := range parts {
		if b.kind == "layer" && images.IsNonDistributable(b.desc.MediaType) && !ps.o.AllowNonDistributable {
			n.skipped = append(n.skipped, b.desc.Digest)
			pl.skipped[b.desc.Digest] = true
			continue
		}
		if _, err := ps.cs.Info(ctx, b.desc.Digest); err != nil {
			if !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("push %s: %s %s: %w", ps.local, b.kind, b.desc.Digest, err)
			}
			if b.kind != "layer" || len(sources) == 0 || referenced[b.desc.Digest] {
				missing = append(missing, b.kind+" "+b.desc.Digest.String())
				continue
			}
			b.from = sources
		}
		if !pl.queued[b.desc.Digest] {
			pl.queued[b.desc.Digest] = true
			pl.blobs = append(pl.blobs, blob{desc: plainDesc(b.desc), kind: b.kind, from: b.from})
		}
	}
	if len(missing) > 0 {
		const show = 3
		if len(missing) > show {
			missing = append(missing[:show], fmt.Sprintf("%d more", len(missing)-show))
		}
		pl.missing = append(pl.missing, what+": "+strings.Join(missing, ", "))
		return nil, nil
	}
	if desc.Platform != nil && !attestation {
		pl.complete = append(pl.complete, images.FormatPlatform(*desc.Platform))
	}
	pl.manifests = append(pl.manifests, n)
	return n, nil
}

func layerBlobs(layers []ocispec.Descriptor) []blob {
	out := make([]blob, len(layers))
	for i, l := range layers {
		out[i] = blob{desc: l, kind: "layer"}
	}
	return out
}

// run sends the plan: blobs, image manifests, nested indexes, root.
func (ps *push) run(ctx context.Context, pl *plan) error {
	for _, b := range pl.blobs {
		ps.sink.Update(progress.Update{ID: b.desc.Digest.String(), Kind: b.kind, Status: progress.Waiting, Total: b.desc.Size})
	}
	for _, n := range append(append(slices.Clone(pl.manifests), pl.indexes...), pl.root) {
		ps.sink.Update(progress.Update{ID: n.desc.Digest.String(), Kind: n.kind, Status: progress.Waiting, Total: n.desc.Size})
	}
	for d := range pl.skipped {
		ps.log.Info("skipping a non-distributable layer", "digest", d, "ref", ps.ref.String())
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ps.o.MaxConcurrentUploads)
	for _, b := range pl.blobs {
		g.Go(func() error { return ps.pushBlob(gctx, b) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Image manifests depend on blobs only: in parallel.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(ps.o.MaxConcurrentUploads)
	for _, n := range pl.manifests {
		g.Go(func() error { return ps.pushManifest(gctx, n, "") })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, n := range pl.indexes {
		if err := ps.pushManifest(ctx, n, ""); err != nil {
			return err
		}
	}
	return ps.pushManifest(ctx, pl.root, ps.ref.Tag)
}

// pushBlob makes the registry have b: present already, mounted from
// another repository of the registry, or uploaded from the store.
func (ps *push) pushBlob(ctx context.Context, b blob) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := b.desc.Digest.String()
	fail := func(err error) error {
		ps.sink.Update(progress.Update{ID: id, Kind: b.kind, Status: progress.Failed, Err: err})
		return err
	}
	ok, err := ps.repo.BlobExists(ctx, b.desc)
	if err != nil {
		return fail(err)
	}
	if ok {
		ps.log.Debug("blob exists on the registry", "digest", b.desc.Digest, "ref", ps.ref.String())
		ps.sink.Update(progress.Update{ID: id, Kind: b.kind, Status: progress.Exists, Current: b.desc.Size, Total: b.desc.Size})
		return nil
	}
	mounts := ps.mountSources(ctx, b.desc.Digest)
	for _, r := range b.from {
		if r.Domain == ps.ref.Domain && r.Path != ps.ref.Path && !slices.Contains(mounts, r.Path) {
			mounts = append(mounts, r.Path)
		}
	}
	for _, from := range mounts {
		mounted, err := ps.repo.MountBlob(ctx, b.desc, from)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			// Not allowed to read from, or gone: another source, or upload.
			ps.log.Debug("cross-repository mount failed", "digest", b.desc.Digest, "from", from, "error", err)
			continue
		}
		if mounted {
			ps.log.Debug("blob mounted", "digest", b.desc.Digest, "from", from, "ref", ps.ref.String())
			ps.sink.Update(progress.Update{ID: id, Kind: b.kind, Status: progress.Mounted, Current: b.desc.Size, Total: b.desc.Size})
			return nil
		}
	}
	ps.sink.Update(progress.Update{ID: id, Kind: b.kind, Status: progress.Uploading, Total: b.desc.Size})
	open := func(off int64) (io.ReadCloser, error) {
		ra, err := ps.cs.ReaderAt(ctx, b.desc)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", b.kind, b.desc.Digest, err)
		}
		if ra.Size() != b.desc.Size || off < 0 || off > ra.Size() {
			ra.Close()
			return nil, fmt.Errorf("%s %s: the store holds %d bytes, the manifest says %d (reading from %d): %w",
				b.kind, b.desc.Digest, ra.Size(), b.desc.Size, off, errdefs.ErrDataLoss)
		}
		r := progress.NewReader(io.NewSectionReader(ra, off, ra.Size()-off), ps.sink,
			progress.Update{ID: id, Kind: b.kind, Status: progress.Uploading, Current: off, Total: b.desc.Size})
		return readCloser{Reader: r, Closer: ra}, nil
	}
	if len(b.from) > 0 {
		open = ps.openElsewhere(ctx, b)
	}
	if err := ps.repo.PushBlob(ctx, b.desc, open); err != nil {
		return fail(err)
	}
	ps.uploaded.Add(b.desc.Size)
	ps.log.Debug("blob uploaded", "digest", b.desc.Digest, "size", b.desc.Size, "ref", ps.ref.String())
	ps.sink.Update(progress.Update{ID: id, Kind: b.kind, Status: progress.Done, Current: b.desc.Size, Total: b.desc.Size})
	return nil
}

// openElsewhere opens a layer that is not in the store (discarded after
// unpack) from the first registry of b.from that serves it, streaming it
// to the push without keeping it. The target registry verifies its digest.
func (ps *push) openElsewhere(ctx context.Context, b blob) func(off int64) (io.ReadCloser, error) {
	return func(off int64) (io.ReadCloser, error) {
		if ps.resolver == nil {
			return nil, fmt.Errorf("%s %s: discarded after unpack, and no registry client to fetch it again: %w", b.kind, b.desc.Digest, errdefs.ErrNotFound)
		}
		var errs []error
		for _, r := range b.from {
			repo, err := ps.resolver.Repository(r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			rc, err := repo.OpenBlob(ctx, b.desc, off)
			if err != nil {
				errs = append(errs, fmt.Errorf("fetch %s from %s: %w", b.desc.Digest, r.Name(), err))
				continue
			}
			ps.log.Debug("layer discarded after unpack: streaming it from its source", "digest", b.desc.Digest, "from", r.Name())
			return readCloser{Reader: progress.NewReader(rc, ps.sink,
				progress.Update{ID: b.desc.Digest.String(), Kind: b.kind, Status: progress.Uploading, Current: off, Total: b.desc.Size}), Closer: rc}, nil
		}
		return nil, fmt.Errorf("%s %s: discarded after unpack, and not fetched again: %w", b.kind, b.desc.Digest, errors.Join(errs...))
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// mountSources lists the repositories of the target registry that the
// blob's distribution source label names, but the target's own.
func (ps *push) mountSources(ctx context.Context, d digest.Digest) []string {
	info, err := ps.cs.Info(ctx, d)
	if err != nil {
		return nil
	}
	var out []string
	for _, repo := range strings.Split(info.Labels[ps.sourceKey], ",") {
		repo = strings.TrimSpace(repo)
		if repo != "" && repo != ps.ref.Path && !slices.Contains(out, repo) {
			out = append(out, repo)
		}
	}
	return out
}

// pushManifest puts n under tag, or under its digest when tag is "" and
// the registry does not have it yet.
func (ps *push) pushManifest(ctx context.Context, n *node, tag string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := n.desc.Digest.String()
	fail := func(err error) error {
		ps.sink.Update(progress.Update{ID: id, Kind: n.kind, Status: progress.Failed, Err: err})
		return err
	}
	if tag == "" {
		ok, err := ps.repo.ManifestExists(ctx, n.desc)
		if err != nil {
			return fail(err)
		}
		if ok {
			ps.sink.Update(progress.Update{ID: id, Kind: n.kind, Status: progress.Exists, Current: n.desc.Size, Total: n.desc.Size})
			return nil
		}
	}
	if err := ps.repo.PushManifest(ctx, n.desc, n.body, tag); err != nil {
		if len(n.skipped) > 0 && !errors.Is(err, context.Canceled) {
			names := make([]string, len(n.skipped))
			for i, d := range n.skipped {
				names[i] = d.String()
			}
			err = fmt.Errorf("manifest %s refers to non-distributable layers that were not pushed (%s), which a registry "+
				"that checks layers wants: push again allowing non-distributable layers: %w", n.desc.Digest, strings.Join(names, ", "), err)
		}
		return fail(err)
	}
	ps.log.Debug("manifest pushed", "digest", n.desc.Digest, "media_type", n.desc.MediaType, "ref", ps.ref.String(), "tag", tag)
	ps.sink.Update(progress.Update{ID: id, Kind: n.kind, Status: progress.Done, Current: n.desc.Size, Total: n.desc.Size})
	return nil
}

// label adds the target repository to the distribution source label of
// every blob and manifest the push sent or found on the registry. A label
// that cannot be written costs a later push a mount, not this push its
// success: it is logged.
func (ps *push) label(ctx context.Context, pl *plan) {
	var ds []digest.Digest
	for _, b := range pl.blobs {
		ds = append(ds, b.desc.Digest)
	}
	for _, n := range append(append(slices.Clone(pl.manifests), pl.indexes...), pl.root) {
		ds = append(ds, n.desc.Digest)
	}
	for _, d := range ds {
		if err := ps.addSource(ctx, d); err != nil {
			ps.log.Warn("record the distribution source of a pushed blob", "digest", d, "label", ps.sourceKey, "error", err)
		}
	}
}

func (ps *push) addSource(ctx context.Context, d digest.Digest) error {
	info, err := ps.cs.Info(ctx, d)
	if err != nil {
		return err
	}
	var repos []string
	for _, r := range strings.Split(info.Labels[ps.sourceKey], ",") {
		if r = strings.TrimSpace(r); r != "" {
			repos = append(repos, r)
		}
	}
	if slices.Contains(repos, ps.ref.Path) {
		return nil
	}
	value := strings.Join(append(repos, ps.ref.Path), ",")
	if len(ps.sourceKey)+len(value) > labels.MaxSize {
		// Keep the oldest sources; this one is still found by HEAD.
		return nil
	}
	_, err = ps.cs.Update(ctx, content.Info{Digest: d, Labels: map[string]string{ps.sourceKey: value}}, "labels."+ps.sourceKey)
	return err
}
