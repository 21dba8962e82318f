package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/internal/imagetar"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

// ExportOptions say which platforms of each image Export writes.
type ExportOptions struct {
	// Platforms picks the manifests of an index whose layers are written.
	// Nil means the host's platform only, matched exactly as ctr does
	// (linux/386 is not exported with linux/amd64).
	Platforms images.PlatformMatcher
	// AllPlatforms writes the layers of every platform.
	AllPlatforms bool
	// SkipMissing leaves out the blobs of the chosen platforms that are
	// not in the store instead of failing.
	SkipMissing bool
}

// exportAttestation marks BuildKit's attestation manifests, which belong to
// no platform.
const exportAttestation = "vnd.docker.reference.type"

// exportMaxDepth bounds nested indexes, as images does.
const exportMaxDepth = 8

// Export writes an OCI image layout tar of imgs to w (see the package doc).
// index.json has one descriptor per image, in the order given. The blobs
// are those of the image the store holds, each once however many images
// share it: the target, every index and manifest under it and their
// configs, and the layers of the platforms chosen by o (for an image whose
// target is a manifest: its layers, unless o.Platforms is set and does not
// match). Indexes, manifests and configs are read once and kept in memory
// until written; layers are streamed from cs into w.
//
// Everything is checked before the first byte is written. A layer, config
// or manifest of a chosen platform that is not in cs fails the export
// (unless o.SkipMissing) with errdefs.ErrNotFound naming the image, the
// platform and every missing digest; so does an image without a manifest
// for the platforms chosen ("no manifest for linux/s390x; the image has
// linux/amd64, linux/arm64"). A blob whose size differs from its descriptor
// is errdefs.ErrDataLoss. An error after writing began leaves w with a
// truncated archive.
func Export(ctx context.Context, w io.Writer, cs content.Provider, imgs []images.Image, o ExportOptions) error {
	if len(imgs) == 0 {
		return fmt.Errorf("export: no images given: %w", errdefs.ErrInvalidArgument)
	}
	plan := &exportPlan{
		o:       o,
		cache:   imagetar.NewCache(cs),
		matcher: o.Platforms,
		added:   map[digest.Digest]bool{},
	}
	if plan.matcher == nil {
		plan.matcher = images.Any(images.DefaultPlatform())
	}
	var missing []error
	for _, img := range imgs {
		iw := &imageWalk{exportPlan: plan, img: img, visited: map[digest.Digest]bool{}}
		if err := iw.walkImage(ctx); err != nil {
			return err
		}
		missing = append(missing, iw.missingErrors()...)
		plan.index.Manifests = append(plan.index.Manifests, exportDescriptor(img))
	}
	if len(missing) > 0 && !o.SkipMissing {
		return errors.Join(missing...)
	}

	// An OCI index, whatever the media types of the images' targets.
	plan.index.Versioned = specs.Versioned{SchemaVersion: 2}
	plan.index.MediaType = ocispec.MediaTypeImageIndex
	indexJSON, err := json.Marshal(plan.index)
	if err != nil {
		return fmt.Errorf("encode %s: %w", ocispec.ImageIndexFile, err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("encode %s: %w", ocispec.ImageLayoutFile, err)
	}
	aw := imagetar.NewWriter(w)
	if err := aw.File(ctx, ocispec.ImageLayoutFile, layoutJSON); err != nil {
		return err
	}
	if err := aw.File(ctx, ocispec.ImageIndexFile, indexJSON); err != nil {
		return err
	}
	for _, d := range plan.small {
		if err := aw.File(ctx, BlobPath(d), plan.cache.Bytes(d)); err != nil {
			return err
		}
	}
	for _, desc := range plan.large {
		if err := aw.Blob(ctx, cs, desc); err != nil {
			return err
		}
	}
	return aw.Close()
}

// exportDescriptor is img's entry in index.json: its target, annotated
// with its names.
func exportDescriptor(img images.Image) ocispec.Descriptor {
	desc := img.Target
	desc.Annotations = maps.Clone(desc.Annotations)
	if desc.Annotations == nil {
		desc.Annotations = map[string]string{}
	}
	desc.Annotations[AnnotationImageName] = img.Name
	// The OCI ref name is the tag alone (image-spec annotations.md); an
	// image named by digest only has none.
	if r, err := reference.Parse(img.Name); err == nil && r.Tag != "" {
		desc.Annotations[ocispec.AnnotationRefName] = r.Tag
	}
	return desc
}

// exportPlan is what an export writes, gathered before writing.
type exportPlan struct {
	o       ExportOptions
	matcher images.PlatformMatcher
	cache   *imagetar.Cache
	index   ocispec.Index
	// small are the indexes, manifests and configs, in cache; large the
	// layers, streamed from the store. added holds both.
	small []digest.Digest
	large []ocispec.Descriptor
	added map[digest.Digest]bool
}

func (p *exportPlan) addSmall(d digest.Digest) {
	if !p.added[d] {
		p.added[d] = true
		p.small = append(p.small, d)
	}
}

func (p *exportPlan) addLarge(desc ocispec.Descriptor) {
	if !p.added[desc.Digest] {
		p.added[desc.Digest] = true
		p.large = append(p.large, desc)
	}
}

// imageWalk is the walk of one image's graph.
type imageWalk struct {
	*exportPlan
	img     images.Image
	visited map[digest.Digest]bool
	// chosen counts the manifests of chosen platforms, present or not.
	chosen int
	// offered lists the platforms the image has, for the error when none
	// is chosen.
	offered []string
	// missing lists the missing blobs by platform, in walk order.
	missing []exportMissing
}

// exportMissing is a missing blob of a platform.
type exportMissing struct {
	platform string
	what     string
	digest   digest.Digest
}

func (iw *imageWalk) miss(platform, what string, d digest.Digest) {
	iw.missing = append(iw.missing, exportMissing{platform, what, d})
}

func (iw *imageWalk) offer(platform string) {
	if !slices.Contains(iw.offered, platform) {
		iw.offered = append(iw.offered, platform)
	}
}

// missingErrors returns one error per platform with missing blobs.
func (iw *imageWalk) missingErrors() []error {
	var order []string
	byPlatform := map[string][]string{}
	for _, m := range iw.missing {
		if _, ok := byPlatform[m.platform]; !ok {
			order = append(order, m.platform)
		}
		byPlatform[m.platform] = append(byPlatform[m.platform], m.what+" "+m.digest.String())
	}
	var errs []error
	for _, p := range order {
		blobs := byPlatform[p]
		noun := "blobs are"
		if len(blobs) == 1 {
			noun = "blob is"
		}
		errs = append(errs, fmt.Errorf("image %q (%s): %d %s not in the content store (pulled without this platform?): %s: %w",
			iw.img.Name, p, len(blobs), noun, strings.Join(blobs, ", "), errdefs.ErrNotFound))
	}
	return errs
}

func (iw *imageWalk) walkImage(ctx context.Context) error {
	target := iw.img.Target
	if !images.IsIndex(target.MediaType) && !images.IsManifest(target.MediaType) {
		if images.IsSchema1(target.MediaType) {
			return fmt.Errorf("image %q: target %s is a Docker schema 1 manifest, which strata does not support: %w", iw.img.Name, target.Digest, errdefs.ErrNotImplemented)
		}
		return fmt.Errorf("image %q: target %s has media type %q, neither an index nor a manifest: %w", iw.img.Name, target.Digest, target.MediaType, errdefs.ErrInvalidArgument)
	}
	// Without its target there is nothing to say about an image.
	if ok, err := iw.cache.Has(ctx, target); err != nil {
		return fmt.Errorf("image %q: %w", iw.img.Name, err)
	} else if !ok {
		return fmt.Errorf("image %q: its target %s is not in the content store: %w", iw.img.Name, target.Digest, errdefs.ErrNotFound)
	}
	if err := iw.walk(ctx, target, 0); err != nil {
		return fmt.Errorf("image %q: %w", iw.img.Name, err)
	}
	if iw.chosen == 0 {
		has := "no platforms"
		if len(iw.offered) > 0 {
			has = strings.Join(iw.offered, ", ")
		}
		return fmt.Errorf("image %q: no manifest for %s; the image has %s: %w", iw.img.Name, iw.matcher, has, errdefs.ErrNotFound)
	}
	return nil
}

func (iw *imageWalk) walk(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if iw.visited[desc.Digest] {
		return nil
	}
	iw.visited[desc.Digest] = true
	if images.IsIndex(desc.MediaType) {
		return iw.walkIndex(ctx, desc, depth)
	}
	return iw.walkManifest(ctx, desc, depth)
}

func (iw *imageWalk) walkIndex(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	if depth >= exportMaxDepth {
		return fmt.Errorf("index %s: indexes nested deeper than %d: %w", desc.Digest, exportMaxDepth, errdefs.ErrInvalidArgument)
	}
	if _, err := iw.cache.Load(ctx, desc, images.MaxManifestSize); errors.Is(err, errdefs.ErrNotFound) {
		// A pull stores every index and manifest, whatever the platform:
		// this image is incomplete.
		iw.miss(exportPlatformName(desc.Platform), "index", desc.Digest)
		return nil
	} else if err != nil {
		return err
	}
	idx, err := images.ReadIndex(ctx, iw.cache, desc)
	if err != nil {
		return err
	}
	iw.addSmall(desc.Digest)
	for _, child := range idx.Manifests {
		// Other artifacts (signatures, SBOMs) are not pulled: the layout
		// may lack blobs its index refers to (image-layout.md).
		if !images.IsIndex(child.MediaType) && !images.IsManifest(child.MediaType) {
			continue
		}
		if err := iw.walk(ctx, child, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (iw *imageWalk) walkManifest(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	attestation := desc.Annotations[exportAttestation] == "attestation-manifest"
	platform := desc.Platform
	var m ocispec.Manifest
	_, err := iw.cache.Load(ctx, desc, images.MaxManifestSize)
	present := err == nil
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	configPresent := false
	if present {
		if m, err = images.ReadManifest(ctx, iw.cache, desc); err != nil {
			return err
		}
		_, err := iw.cache.Load(ctx, m.Config, images.MaxConfigSize)
		configPresent = err == nil
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("config of manifest %s: %w", desc.Digest, err)
		}
		if platform == nil && configPresent && images.IsConfig(m.Config.MediaType) {
			cfg, err := images.ReadConfig(ctx, iw.cache, m.Config)
			if err != nil {
				return err
			}
			platform = &cfg.Platform
		}
	}
	name := exportPlatformName(platform)
	if !attestation && platform != nil {
		iw.offer(name)
	}

	var chosen bool
	switch {
	case attestation:
	case depth == 0 && (iw.o.Platforms == nil || iw.o.AllPlatforms || platform == nil):
		// A lone manifest is the image, whatever its platform, as ctr
		// exports it (and one whose platform cannot be read is reported
		// with what it lacks).
		chosen = true
	case iw.o.AllPlatforms:
		chosen = true
	default:
		chosen = platform != nil && iw.matcher.Match(*platform)
	}
	if !chosen {
		// Manifests and configs cost little and tell an importer what the
		// image offers; the layers stay behind. Attestations travel with
		// their layers when all platforms do and the layers are here.
		if present {
			iw.addSmall(desc.Digest)
			if configPresent {
				iw.addSmall(m.Config.Digest)
			}
			if attestation && iw.o.AllPlatforms {
				for _, l := range m.Layers {
					if err := iw.layer(ctx, name, l, false); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	iw.chosen++
	if !present {
		iw.miss(name, "manifest", desc.Digest)
		return nil
	}
	iw.addSmall(desc.Digest)
	if configPresent {
		iw.addSmall(m.Config.Digest)
	} else {
		iw.miss(name, "config", m.Config.Digest)
	}
	for _, l := range m.Layers {
		// A foreign layer with URLs may be fetched from them by whoever
		// imports the archive, as docker save leaves it out.
		required := !(images.IsNonDistributable(l.MediaType) && len(l.URLs) > 0)
		if err := iw.layer(ctx, name, l, required); err != nil {
			return err
		}
	}
	return nil
}

// layer adds the layer desc when the store has it, and notes it missing
// when it is required.
func (iw *imageWalk) layer(ctx context.Context, platform string, desc ocispec.Descriptor, required bool) error {
	if iw.added[desc.Digest] {
		return nil
	}
	ok, err := iw.cache.Has(ctx, desc)
	if err != nil {
		return err
	}
	switch {
	case ok:
		iw.addLarge(desc)
	case required:
		iw.miss(platform, "layer", desc.Digest)
	}
	return nil
}

func exportPlatformName(p *ocispec.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	return images.FormatPlatform(*p)
}
