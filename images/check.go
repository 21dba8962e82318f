package images

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

// PlatformStatus is what the content store holds of one platform's image:
// its manifest, the manifest's config and its layers.
type PlatformStatus struct {
	// Platform is the manifest's, from the index or else from its config,
	// normalised; zero (FormatPlatform says "unknown") when neither is in
	// the store.
	Platform ocispec.Platform
	// Manifest is the descriptor of the platform's manifest, as its index
	// lists it, with Platform set when known (of a nested index, when that
	// index is missing).
	Manifest ocispec.Descriptor
	// Present and Needed count distinct blobs. A missing manifest counts
	// only itself: what it names is not known.
	Present, Needed int
	// Missing lists the needed blobs not in the store: manifest, config,
	// layers, in the manifest's order.
	Missing []digest.Digest
	// Size is the bytes of the needed blobs, as their descriptors say;
	// PresentSize the bytes of those present.
	Size, PresentSize int64
	// Discarded lists the layers dropped after unpacking (DiscardLayers,
	// ctr content prune references): absent, no longer referenced by the
	// manifest's labels, while the config says the image is unpacked.
	// They are not Missing nor Needed, and not in Size; DiscardedSize
	// is their bytes. Check knows them only when its Provider also has
	// Info (a content.Store).
	Discarded     []digest.Digest
	DiscardedSize int64
}

// Complete reports whether every blob the platform needs is present.
func (s PlatformStatus) Complete() bool { return s.Needed > 0 && s.Present == s.Needed }

// PresenceFunc reports whether the blob desc is in the store. It returns
// errdefs.ErrDataLoss when the blob is there with another size than desc
// says.
type PresenceFunc func(ctx context.Context, desc ocispec.Descriptor) (bool, error)

// ProviderPresence tests presence by opening the blob in p; for callers
// without a cheaper way (Check's default).
func ProviderPresence(p content.Provider) PresenceFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
		ra, err := p.ReaderAt(ctx, desc)
		if errors.Is(err, errdefs.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		size := ra.Size()
		ra.Close()
		if desc.Size > 0 && size != desc.Size {
			return true, fmt.Errorf("blob %s: descriptor says %d bytes, the store has %d: %w", desc.Digest, desc.Size, size, errdefs.ErrDataLoss)
		}
		return true, nil
	}
}

// Check reports, for every platform the image target offers (an index,
// nested indexes, or a single manifest), which of the blobs it needs are
// in the store: the manifest, its config and its layers, counted with has
// (nil: ProviderPresence(p)). Statuses come in the index's order, one per
// manifest digest; attestation manifests and children that are not images
// (artifacts) are left out. Layers a platform shares with another count
// for both.
//
// A missing target is errdefs.ErrNotFound naming it; a schema 1 manifest
// errdefs.ErrNotImplemented; a blob that is there but cannot be parsed
// errdefs.ErrInvalidArgument, and errors of has are returned as they are.
// A missing manifest, config, layer or nested index is not an error: it
// is what Missing reports.
func Check(ctx context.Context, p content.Provider, has PresenceFunc, target ocispec.Descriptor) ([]PlatformStatus, error) {
	if has == nil {
		has = ProviderPresence(p)
	}
	if ok, err := has(ctx, target); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("image target %s is not in the content store: %w", target.Digest, errdefs.ErrNotFound)
	}
	var out []PlatformStatus
	readIndex := func(desc ocispec.Descriptor) (ocispec.Index, bool, error) {
		ok, err := has(ctx, desc)
		if err != nil || !ok {
			return ocispec.Index{}, false, err
		}
		idx, err := ReadIndex(ctx, p, desc)
		if errors.Is(err, errdefs.ErrNotFound) {
			return idx, false, nil // removed since has looked
		}
		return idx, err == nil, err
	}
	manifest := func(desc ocispec.Descriptor) error {
		st, err := checkManifest(ctx, p, has, desc)
		if err != nil {
			return err
		}
		out = append(out, st)
		return nil
	}
	missing := func(desc ocispec.Descriptor) error {
		// What platforms the index holds is not known: one entry says it
		// is missing.
		st := PlatformStatus{Manifest: desc, Needed: 1, Size: desc.Size, Missing: []digest.Digest{desc.Digest}}
		if desc.Platform != nil {
			st.Platform = normalize(*desc.Platform)
		}
		out = append(out, st)
		return nil
	}
	if err := walkImage(ctx, target, readIndex, manifest, missing); err != nil {
		return nil, err
	}
	return out, nil
}

// checkManifest counts the blobs of the manifest desc.
func checkManifest(ctx context.Context, p content.Provider, has PresenceFunc, desc ocispec.Descriptor) (PlatformStatus, error) {
	st := PlatformStatus{Manifest: desc}
	if desc.Platform != nil {
		st.Platform = normalize(*desc.Platform)
	}
	counted := map[digest.Digest]bool{}
	count := func(d ocispec.Descriptor) (bool, error) {
		if counted[d.Digest] {
			return true, nil
		}
		counted[d.Digest] = true
		ok, err := has(ctx, d)
		if err != nil {
			return false, err
		}
		st.Needed++
		st.Size += d.Size
		if ok {
			st.Present++
			st.PresentSize += d.Size
		} else {
			st.Missing = append(st.Missing, d.Digest)
		}
		return ok, nil
	}
	ok, err := count(desc)
	if err != nil || !ok {
		return st, err
	}
	m, err := ReadManifest(ctx, p, desc)
	if errors.Is(err, errdefs.ErrNotFound) {
		// Removed since has looked.
		st.Present, st.PresentSize, st.Missing = 0, 0, []digest.Digest{desc.Digest}
		return st, nil
	}
	if err != nil {
		return st, err
	}
	configPresent, err := count(m.Config)
	if err != nil {
		return st, err
	}
	for _, l := range m.Layers {
		if _, err := count(l); err != nil {
			return st, err
		}
	}
	if err := discarded(ctx, p, desc.Digest, m, &st); err != nil {
		return st, err
	}
	if desc.Platform == nil && configPresent && IsConfig(m.Config.MediaType) {
		cfg, err := ReadConfig(ctx, p, m.Config)
		switch {
		case err == nil && cfg.Platform.OS != "":
			st.Platform = normalize(cfg.Platform)
			p := st.Platform
			st.Manifest.Platform = &p
		case err != nil && !errors.Is(err, errdefs.ErrNotFound):
			return st, fmt.Errorf("platform of manifest %s: %w", desc.Digest, err)
		}
	}
	return st, nil
}

// discarded moves from st.Missing to st.Discarded the layers of m dropped
// after unpacking: the manifest's labels no longer name them and the
// config is labelled with its snapshot.
func discarded(ctx context.Context, p content.Provider, manifest digest.Digest, m ocispec.Manifest, st *PlatformStatus) error {
	ip, ok := p.(interface {
		Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
	})
	if !ok || len(st.Missing) == 0 {
		return nil
	}
	info, err := ip.Info(ctx, manifest)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if unpacked, err := Unpacked(ctx, ip, m.Config.Digest); err != nil || !unpacked {
		return err
	}
	refs := ReferencedByLabels(info.Labels)
	sizes := map[digest.Digest]int64{}
	for _, l := range m.Layers {
		if !refs[l.Digest] {
			sizes[l.Digest] = l.Size
		}
	}
	var missing []digest.Digest
	for _, d := range st.Missing {
		size, ok := sizes[d]
		if !ok {
			missing = append(missing, d)
			continue
		}
		st.Discarded = append(st.Discarded, d)
		st.DiscardedSize += size
		st.Needed--
		st.Size -= size
	}
	st.Missing = missing
	return nil
}
