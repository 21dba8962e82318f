package imageimport

import (
	"context"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
)

// label sets the labels a pull sets on what is present under desc:
// gc.ref.content edges on indexes and manifests (images.ChildrenLabels),
// the uncompressed digest on layers.
func (im *Archive) label(ctx context.Context, desc ocispec.Descriptor, done map[digest.Digest]bool, depth int) error {
	if done[desc.Digest] || depth > maxDepth {
		return nil
	}
	done[desc.Digest] = true
	if ok, err := im.present(ctx, desc.Digest); !ok || err != nil {
		return err
	}
	switch {
	case images.IsIndex(desc.MediaType):
		idx, err := images.ReadIndex(ctx, im.cs, desc)
		if err != nil {
			return err
		}
		for _, c := range idx.Manifests {
			if images.IsIndex(c.MediaType) || images.IsManifest(c.MediaType) {
				if err := im.label(ctx, c, done, depth+1); err != nil {
					return err
				}
			}
		}
	case images.IsManifest(desc.MediaType):
		m, err := images.ReadManifest(ctx, im.cs, desc)
		if err != nil {
			return err
		}
		// A config that does not list the layers' diff IDs (the
		// manifest of a platform not asked for, an attestation) labels
		// no layer; the manifests asked for were checked.
		var diffIDs []digest.Digest
		if ok, err := im.present(ctx, m.Config.Digest); err != nil {
			return err
		} else if ok {
			diffIDs, _ = images.RootFS(ctx, im.cs, m)
		}
		if len(diffIDs) == len(m.Layers) {
			for i, l := range m.Layers {
				if ok, err := im.present(ctx, l.Digest); err != nil {
					return err
				} else if ok && !done[l.Digest] {
					done[l.Digest] = true
					if err := im.setLabels(ctx, l.Digest, map[string]string{lbl.Uncompressed: diffIDs[i].String()}); err != nil {
						return err
					}
				}
			}
		}
	default:
		return nil
	}
	body, err := content.ReadBlob(ctx, im.cs, desc, images.MaxManifestSize)
	if err != nil {
		return err
	}
	labels, err := images.ChildrenLabels(desc, body)
	if err != nil {
		return err
	}
	return im.setLabels(ctx, desc.Digest, labels)
}

func (im *Archive) setLabels(ctx context.Context, d digest.Digest, labels map[string]string) error {
	var paths []string
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	if _, err := im.cs.Update(ctx, content.Info{Digest: d, Labels: labels}, paths...); err != nil {
		return fmt.Errorf("label %s: %w", d, err)
	}
	return nil
}

// record creates (or points at the new target) the image records, one per
// name; a name given twice goes to the later image, as with containerd.
// The records are all written or, on failure, none: those created are
// removed and those retargeted point at their old target again.
func (im *Archive) record(ctx context.Context, is images.Store, targets []Target) ([]images.Image, error) {
	var order []string
	byName := map[string]ocispec.Descriptor{}
	for _, t := range targets {
		for _, n := range t.Names {
			if _, ok := byName[n]; !ok {
				order = append(order, n)
			}
			byName[n] = t.Desc
		}
	}
	var out, created, retargeted []images.Image
	undo := func() {
		ctx := context.WithoutCancel(ctx)
		for _, c := range created {
			if err := is.Delete(ctx, c.Name); err != nil {
				im.log().Warn("remove an image of a failed import", "name", c.Name, "error", err)
			}
		}
		for _, old := range retargeted {
			if _, err := is.Update(ctx, old, "target"); err != nil {
				im.log().Warn("restore the target of an image after a failed import", "name", old.Name, "digest", old.Target.Digest, "error", err)
			}
		}
	}
	for _, n := range order {
		got, old, err := images.Record(ctx, is, images.Image{Name: n, Target: byName[n]})
		switch {
		case err != nil:
		case old == nil:
			created = append(created, got)
		default:
			retargeted = append(retargeted, *old)
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("record image %q: %w", n, err)
		}
		out = append(out, got)
	}
	return out, nil
}
