package images

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	lbl "github.com/strata-oci/strata/labels"
)

// InfoManager reads and changes the labels of blobs.
type InfoManager interface {
	content.Provider
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
	Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error)
}

// DiscardResult says what DiscardLayers did.
type DiscardResult struct {
	// Manifests are those whose layer references were dropped.
	Manifests []digest.Digest
	// NotUnpacked are manifests left alone: their layers are not unpacked
	// (their config has no containerd.io/gc.ref.snapshot.* label).
	NotUnpacked []digest.Digest
}

// DiscardLayers drops the layer references (containerd.io/gc.ref.content.l.*)
// of every manifest under target whose layers are unpacked, as `ctr content
// prune references` does; the next garbage collection then frees the
// compressed layers no other image references, while the snapshots stay.
// Manifests that are not unpacked, or not in the store, are left alone.
func DiscardLayers(ctx context.Context, cs InfoManager, target ocispec.Descriptor) (DiscardResult, error) {
	var res DiscardResult
	readIndex := presentIndexes(ctx, cs)
	manifest := func(desc ocispec.Descriptor) error {
		info, err := cs.Info(ctx, desc.Digest)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var paths []string
		for k := range info.Labels {
			if strings.HasPrefix(k, lbl.GCRefLayerPrefix) {
				paths = append(paths, "labels."+k)
			}
		}
		if len(paths) == 0 {
			return nil
		}
		m, err := ReadManifest(ctx, cs, desc)
		if err != nil {
			return err
		}
		if unpacked, err := Unpacked(ctx, cs, m.Config.Digest); err != nil || !unpacked {
			if err == nil {
				res.NotUnpacked = append(res.NotUnpacked, desc.Digest)
			}
			return err
		}
		if _, err := cs.Update(ctx, content.Info{Digest: desc.Digest}, paths...); err != nil {
			return fmt.Errorf("drop layer references of manifest %s: %w", desc.Digest, err)
		}
		res.Manifests = append(res.Manifests, desc.Digest)
		return nil
	}
	err := walkImage(ctx, target, readIndex, manifest, func(ocispec.Descriptor) error { return nil })
	return res, err
}

// Unpacked reports whether config carries a containerd.io/gc.ref.snapshot.*
// label: what pull (and ctr) set once the layers are unpacked, which keeps
// the snapshot alive as long as the config.
func Unpacked(ctx context.Context, cs interface {
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
}, config digest.Digest) (bool, error) {
	info, err := cs.Info(ctx, config)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for k := range info.Labels {
		if strings.HasPrefix(k, lbl.GCRefSnapshotPrefix) {
			return true, nil
		}
	}
	return false, nil
}

// ReferencedByLabels returns the digests the containerd.io/gc.ref.content.*
// labels of labels name.
func ReferencedByLabels(labels map[string]string) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for k, v := range labels {
		if strings.HasPrefix(k, lbl.GCRefContentPrefix) {
			out[digest.Digest(v)] = true
		}
	}
	return out
}

// DistributionSources returns, per registry host, the repositories the
// distribution source labels of labels name.
func DistributionSources(labels map[string]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range labels {
		host, ok := strings.CutPrefix(k, lbl.DistributionSourcePrefix)
		if !ok || host == "" {
			continue
		}
		for _, repo := range strings.Split(v, ",") {
			if repo = strings.TrimSpace(repo); repo != "" {
				out[host] = append(out[host], repo)
			}
		}
	}
	return out
}

// DiscardedLayers returns the layers under target that were discarded after
// unpacking (absent, no longer named by their manifest's labels, the config
// unpacked), each with the repositories ("host/path") its manifest's
// distribution source labels name: where they can be fetched again.
func DiscardedLayers(ctx context.Context, cs InfoManager, target ocispec.Descriptor) (map[digest.Digest][]string, error) {
	out := map[digest.Digest][]string{}
	readIndex := presentIndexes(ctx, cs)
	manifest := func(desc ocispec.Descriptor) error {
		info, err := cs.Info(ctx, desc.Digest)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		m, err := ReadManifest(ctx, cs, desc)
		if err != nil {
			return err
		}
		if unpacked, err := Unpacked(ctx, cs, m.Config.Digest); err != nil || !unpacked {
			return err
		}
		refs := ReferencedByLabels(info.Labels)
		var sources []string
		for host, repos := range DistributionSources(info.Labels) {
			for _, repo := range repos {
				sources = append(sources, host+"/"+repo)
			}
		}
		for _, l := range m.Layers {
			if refs[l.Digest] {
				continue
			}
			if _, err := cs.Info(ctx, l.Digest); err == nil {
				continue
			} else if !errors.Is(err, errdefs.ErrNotFound) {
				return err
			}
			out[l.Digest] = append(out[l.Digest], sources...)
		}
		return nil
	}
	err := walkImage(ctx, target, readIndex, manifest, func(ocispec.Descriptor) error { return nil })
	return out, err
}

// presentIndexes reads indexes for walkImage, passing over those that are
// not in the store (an index of platforms never fetched is no error here).
func presentIndexes(ctx context.Context, cs InfoManager) func(ocispec.Descriptor) (ocispec.Index, bool, error) {
	return func(desc ocispec.Descriptor) (ocispec.Index, bool, error) {
		idx, err := ReadIndex(ctx, cs, desc)
		if errors.Is(err, errdefs.ErrNotFound) {
			return idx, false, nil
		}
		return idx, err == nil, err
	}
}
