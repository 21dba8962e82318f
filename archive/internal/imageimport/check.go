package imageimport

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
)

// present reports whether blob d is in the store, from the archive or
// from before; one from before is added to the import's lease, so that
// nothing collects it before the image records exist.
func (im *Archive) present(ctx context.Context, d digest.Digest) (bool, error) {
	if im.have[d] {
		return true, nil
	}
	// Seeing the blob and holding it are one step: a collection between
	// the two would remove it under an import that counts on it.
	if err := im.lm.HoldExisting(ctx, im.lease, leases.Resource{ID: d.String(), Type: "content"}); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	im.have[d] = true
	return true, nil
}

// imageName is how errors name the image of t.
func (t Target) imageName() string {
	if len(t.Names) > 0 {
		return t.Names[0]
	}
	return t.Where
}

// check makes sure the store now has what the image t needs: all of a
// manifest target; for an index, the manifest that the host platform
// runs best (with AllPlatforms, every manifest), its config and layers.
// Manifests of other platforms may be missing: an index exported for one
// platform is still an image.
func (im *Archive) check(ctx context.Context, t Target) error {
	name := t.imageName()
	if images.IsManifest(t.Desc.MediaType) {
		return im.checkManifest(ctx, name, t.Desc, "")
	}
	leaves, err := im.leaves(ctx, name, t.Desc, 0)
	if err != nil {
		return err
	}
	const hint = " (exported without --all-platforms?)"
	if im.o.AllPlatforms {
		for _, l := range leaves {
			if err := im.checkManifest(ctx, name, l, hint); err != nil {
				return err
			}
		}
		return nil
	}
	host := images.Only(images.DefaultPlatform())
	var (
		best    *ocispec.Descriptor
		unknown []string
	)
	for i, l := range leaves {
		switch {
		case l.Platform == nil:
			unknown = append(unknown, l.Digest.String())
		case host.Match(*l.Platform) && (best == nil || host.Less(*l.Platform, *best.Platform)):
			best = &leaves[i]
		}
	}
	if best != nil {
		return im.checkManifest(ctx, name, *best, hint)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("image %q: no manifest for %s in the archive, and manifests %s of unknown platform are not in it%s: %w",
			name, host, strings.Join(unknown, ", "), hint, errdefs.ErrNotFound)
	}
	// The image does not offer the host's platform: recorded all the same.
	return nil
}

// leaves returns the image manifests under the index desc, attestations
// left out, with their platforms from the index or, when it has none and
// the blobs are there, from their configs.
func (im *Archive) leaves(ctx context.Context, name string, desc ocispec.Descriptor, depth int) ([]ocispec.Descriptor, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("image %q: indexes nested deeper than %d: %w", name, maxDepth, errdefs.ErrInvalidArgument)
	}
	if ok, err := im.present(ctx, desc.Digest); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("image %q: index %s is not in the archive: %w", name, desc.Digest, errdefs.ErrNotFound)
	}
	idx, err := images.ReadIndex(ctx, im.cs, desc)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	var out []ocispec.Descriptor
	for _, c := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case images.IsIndex(c.MediaType):
			ok, err := im.present(ctx, c.Digest)
			if err != nil {
				return nil, err
			}
			if !ok && !im.o.AllPlatforms {
				continue // its platforms are unknown, and not asked for
			}
			sub, err := im.leaves(ctx, name, c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case images.IsManifest(c.MediaType):
			if c.Annotations[annotationReferenceType] == "attestation-manifest" {
				continue
			}
			if c.Platform == nil {
				p, err := im.platformOf(ctx, c)
				if err != nil {
					return nil, fmt.Errorf("image %q: %w", name, err)
				}
				c.Platform = p
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// platformOf reads the platform of manifest desc from its config, or
// returns nil when either blob is missing.
func (im *Archive) platformOf(ctx context.Context, desc ocispec.Descriptor) (*ocispec.Platform, error) {
	if ok, err := im.present(ctx, desc.Digest); !ok || err != nil {
		return nil, err
	}
	m, err := images.ReadManifest(ctx, im.cs, desc)
	if err != nil {
		return nil, err
	}
	if ok, err := im.present(ctx, m.Config.Digest); !ok || err != nil {
		return nil, err
	}
	cfg, err := images.ReadConfig(ctx, im.cs, m.Config)
	if err != nil {
		return nil, err
	}
	return &cfg.Platform, nil
}

// checkManifest makes sure the manifest desc, its config and its layers
// are present (non-distributable layers may be missing, as in a pull).
func (im *Archive) checkManifest(ctx context.Context, name string, desc ocispec.Descriptor, hint string) error {
	what := ""
	if desc.Platform != nil {
		what = images.FormatPlatform(*desc.Platform) + " "
	}
	if ok, err := im.present(ctx, desc.Digest); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("image %q: %smanifest %s is not in the archive%s: %w", name, what, desc.Digest, hint, errdefs.ErrNotFound)
	}
	m, err := images.ReadManifest(ctx, im.cs, desc)
	if err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	if ok, err := im.present(ctx, m.Config.Digest); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("image %q: %sconfig %s of manifest %s is not in the archive: %w", name, what, m.Config.Digest, desc.Digest, errdefs.ErrNotFound)
	}
	if _, err := images.RootFS(ctx, im.cs, m); err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	for _, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := im.present(ctx, l.Digest)
		if err != nil {
			return err
		}
		if !ok && !images.IsNonDistributable(l.MediaType) {
			return fmt.Errorf("image %q: %slayer %s of manifest %s is not in the archive: %w", name, what, l.Digest, desc.Digest, errdefs.ErrNotFound)
		}
	}
	return nil
}
