package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

// Media types this file recognises beyond mediatypes.go.
const (
	MediaTypeDockerSchema1Manifest       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1SignedManifest = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerSchema2LayerZstd      = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerSchema2LayerForeign   = "application/vnd.docker.image.rootfs.foreign.diff.tar"
	// MediaTypeDockerSchema2LayerForeignGzip is a Windows base layer that
	// registries do not serve; its descriptor carries URLs instead.
	MediaTypeDockerSchema2LayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// MaxConfigSize bounds the image configs strata reads.
const MaxConfigSize = 8 << 20

// maxIndexDepth bounds nested indexes: real images have one level.
const maxIndexDepth = 8

// attestationAnnotation marks BuildKit's attestation manifests (platform
// unknown/unknown), which are not runnable images.
const attestationAnnotation = "vnd.docker.reference.type"

// IsSchema1 reports whether mediaType is a Docker schema 1 manifest, which
// strata refuses.
func IsSchema1(mediaType string) bool {
	return mediaType == MediaTypeDockerSchema1Manifest || mediaType == MediaTypeDockerSchema1SignedManifest
}

// IsConfig reports whether mediaType is an OCI or Docker image config.
func IsConfig(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageConfig || mediaType == MediaTypeDockerSchema2Config
}

// IsLayer reports whether mediaType is a filesystem layer: OCI or Docker,
// uncompressed, gzip or zstd, distributable or not.
func IsLayer(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		MediaTypeDockerSchema2Layer, MediaTypeDockerSchema2LayerGzip, MediaTypeDockerSchema2LayerZstd:
		return true
	}
	return IsNonDistributable(mediaType)
}

// IsNonDistributable reports whether mediaType is a layer that registries
// need not serve: OCI non-distributable layers and Docker foreign layers.
func IsNonDistributable(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageLayerNonDistributable, //nolint:staticcheck // still found in the wild
		ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerSchema2LayerForeign, MediaTypeDockerSchema2LayerForeignGzip:
		return true
	}
	return false
}

// errSchema1 is the refusal of a Docker schema 1 manifest.
func errSchema1(desc ocispec.Descriptor) error {
	return fmt.Errorf("manifest %s: schema 1 images are not supported (Docker deprecated the format in 2017); "+
		"push it again with a current client: %w", desc.Digest, errdefs.ErrNotImplemented)
}

// readPart reads the blob desc of an image, naming the part (kind) in the
// errors: a missing blob is errdefs.ErrNotFound, an oversized one or one
// whose size is not what desc says errdefs.ErrInvalidArgument.
func readPart(ctx context.Context, p content.Provider, desc ocispec.Descriptor, kind string, limit int64) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %w", kind, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("%s %s: %d bytes exceeds the limit of %d: %w", kind, desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	b, err := content.ReadBlob(ctx, p, desc, limit)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			name := desc.Digest.String()
			if desc.Platform != nil {
				name += " (" + FormatPlatform(*desc.Platform) + ")"
			}
			return nil, fmt.Errorf("%s %s is not in the content store: %w", kind, name, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read %s %s: %w", kind, desc.Digest, err)
	}
	if desc.Size > 0 && int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("%s %s: descriptor says %d bytes, the blob has %d: %w", kind, desc.Digest, desc.Size, len(b), errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// shape holds the fields that tell indexes and manifests apart, whatever
// their media type claims.
type shape struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     json.RawMessage `json:"manifests"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	FSLayers      json.RawMessage `json:"fsLayers"`
}

// ReadIndex reads and parses the OCI index or Docker manifest list desc. It
// returns errdefs.ErrNotFound when the blob is missing,
// errdefs.ErrNotImplemented for a schema 1 manifest and
// errdefs.ErrInvalidArgument when the blob is too large, is not JSON, or
// its media type (in desc or in the body) is not an index's.
func ReadIndex(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Index, error) {
	if IsSchema1(desc.MediaType) {
		return ocispec.Index{}, errSchema1(desc)
	}
	if !IsIndex(desc.MediaType) {
		return ocispec.Index{}, fmt.Errorf("index %s: media type %q is not an image index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, err := readPart(ctx, p, desc, "index", MaxManifestSize)
	if err != nil {
		return ocispec.Index{}, err
	}
	var s shape
	if err := json.Unmarshal(b, &s); err != nil {
		return ocispec.Index{}, fmt.Errorf("parse index %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	switch {
	case s.SchemaVersion == 1 || s.FSLayers != nil:
		return ocispec.Index{}, errSchema1(desc)
	case s.MediaType != "" && !IsIndex(s.MediaType):
		return ocispec.Index{}, fmt.Errorf("index %s: body has media type %q: %w", desc.Digest, s.MediaType, errdefs.ErrInvalidArgument)
	case s.Config != nil || s.Layers != nil:
		return ocispec.Index{}, fmt.Errorf("index %s: body is a manifest (it has config or layers): %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("parse index %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return ocispec.Index{}, fmt.Errorf("index %s: child digest %q: %w: %w", desc.Digest, m.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	return idx, nil
}

// ReadManifest reads and parses the OCI or Docker schema 2 manifest desc,
// with the errors of ReadIndex.
func ReadManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	if IsSchema1(desc.MediaType) {
		return ocispec.Manifest{}, errSchema1(desc)
	}
	if !IsManifest(desc.MediaType) {
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: media type %q is not an image manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, err := readPart(ctx, p, desc, "manifest", MaxManifestSize)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	var s shape
	if err := json.Unmarshal(b, &s); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("parse manifest %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	switch {
	case s.SchemaVersion == 1 || s.FSLayers != nil || IsSchema1(s.MediaType):
		return ocispec.Manifest{}, errSchema1(desc)
	case s.MediaType != "" && !IsManifest(s.MediaType):
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: body has media type %q: %w", desc.Digest, s.MediaType, errdefs.ErrInvalidArgument)
	case s.Manifests != nil:
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: body is an index (it has manifests): %w", desc.Digest, errdefs.ErrInvalidArgument)
	case s.Config == nil:
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: body has no config: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("parse manifest %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := d.Digest.Validate(); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("manifest %s: child digest %q: %w: %w", desc.Digest, d.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	return m, nil
}

// ReadConfig reads and parses the OCI or Docker image config desc. It
// returns errdefs.ErrNotFound when the blob is missing and
// errdefs.ErrInvalidArgument when it is larger than MaxConfigSize, is not
// JSON or desc's media type is not an image config's.
func ReadConfig(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Image, error) {
	if !IsConfig(desc.MediaType) {
		return ocispec.Image{}, fmt.Errorf("config %s: media type %q is not an image config: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, err := readPart(ctx, p, desc, "config", MaxConfigSize)
	if err != nil {
		return ocispec.Image{}, err
	}
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return ocispec.Image{}, fmt.Errorf("parse config %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return img, nil
}

// Manifests returns the descriptors of the image manifests under target (an
// index, nested indexes, or a manifest) whose platform m matches, best match
// first (ties keep the index's order). A manifest descriptor without a
// platform gets the one of its config, filled into the returned descriptor.
// Attestation manifests are left out. A missing blob that is needed is
// errdefs.ErrNotFound naming it: "manifest sha256:… (linux/arm64) is not in
// the content store"; a schema 1 target is errdefs.ErrNotImplemented.
func Manifests(ctx context.Context, p content.Provider, target ocispec.Descriptor, m PlatformMatcher) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := walkManifests(ctx, p, target, func(desc ocispec.Descriptor) error {
		if m.Match(*desc.Platform) {
			out = append(out, desc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b ocispec.Descriptor) int {
		switch {
		case m.Less(*a.Platform, *b.Platform):
			return -1
		case m.Less(*b.Platform, *a.Platform):
			return 1
		}
		return 0
	})
	return out, nil
}

// Manifest returns the manifest under target that m matches best, read. No
// match is errdefs.ErrNotFound: "no manifest for linux/s390x; the image has
// linux/amd64, linux/arm64". Other errors are those of Manifests and
// ReadManifest.
func Manifest(ctx context.Context, p content.Provider, target ocispec.Descriptor, m PlatformMatcher) (ocispec.Descriptor, ocispec.Manifest, error) {
	descs, err := Manifests(ctx, p, target, m)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Manifest{}, err
	}
	if len(descs) == 0 {
		has := "no platforms"
		if ps, err := Platforms(ctx, p, target); err == nil && len(ps) > 0 {
			names := make([]string, len(ps))
			for i, pl := range ps {
				names[i] = FormatPlatform(pl)
			}
			has = strings.Join(names, ", ")
		}
		return ocispec.Descriptor{}, ocispec.Manifest{}, fmt.Errorf("no manifest for %s; the image has %s: %w", m, has, errdefs.ErrNotFound)
	}
	manifest, err := ReadManifest(ctx, p, descs[0])
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Manifest{}, err
	}
	return descs[0], manifest, nil
}

// Platforms lists the platforms target offers, normalised (arm64/v8 is
// arm64), in the order of the index, without duplicates. Platforms come from the index when it has them;
// manifests without one are read, with their configs.
func Platforms(ctx context.Context, p content.Provider, target ocispec.Descriptor) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	seen := map[string]bool{}
	err := walkManifests(ctx, p, target, func(desc ocispec.Descriptor) error {
		pl := normalize(*desc.Platform)
		key := FormatPlatform(pl) + "\x00" + pl.OSVersion
		if !seen[key] {
			seen[key] = true
			out = append(out, pl)
		}
		return nil
	})
	return out, err
}

// walkManifests calls fn for each image manifest under target, once per
// digest, with its Platform set.
func walkManifests(ctx context.Context, p content.Provider, target ocispec.Descriptor, fn func(ocispec.Descriptor) error) error {
	readIndex := func(desc ocispec.Descriptor) (ocispec.Index, bool, error) {
		idx, err := ReadIndex(ctx, p, desc)
		return idx, err == nil, err
	}
	return walkImage(ctx, target, readIndex, func(desc ocispec.Descriptor) error {
		if desc.Platform == nil {
			pl, err := manifestPlatform(ctx, p, desc)
			if err != nil {
				return err
			}
			desc.Platform = &pl
		}
		return fn(desc)
	}, nil)
}

// walkImage visits the image manifests under target (indexes nested up to
// maxIndexDepth, each digest once, attestations and artifacts left out):
// manifest for each manifest, missing for an index readIndex reports absent
// (ok false, no error).
func walkImage(ctx context.Context, target ocispec.Descriptor,
	readIndex func(ocispec.Descriptor) (ocispec.Index, bool, error),
	manifest, missing func(ocispec.Descriptor) error) error {
	seen := map[digest.Digest]bool{}
	var walk func(desc ocispec.Descriptor, depth int) error
	walk = func(desc ocispec.Descriptor, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if seen[desc.Digest] {
			return nil
		}
		seen[desc.Digest] = true
		switch {
		case IsSchema1(desc.MediaType):
			return errSchema1(desc)
		case IsManifest(desc.MediaType):
			if desc.Annotations[attestationAnnotation] == "attestation-manifest" {
				return nil
			}
			return manifest(desc)
		case IsIndex(desc.MediaType):
			if depth >= maxIndexDepth {
				return fmt.Errorf("index %s: indexes nested deeper than %d: %w", desc.Digest, maxIndexDepth, errdefs.ErrInvalidArgument)
			}
			idx, ok, err := readIndex(desc)
			if err != nil {
				return err
			}
			if !ok {
				return missing(desc)
			}
			for _, child := range idx.Manifests {
				if !IsIndex(child.MediaType) && !IsManifest(child.MediaType) {
					// Artifacts and schema 1 children of a list: not images
					// strata can run; the index may still offer others.
					continue
				}
				if err := walk(child, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("image target %s: media type %q is neither an index nor a manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	return walk(target, 0)
}

// manifestPlatform reads the platform of the manifest desc from its config.
func manifestPlatform(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Platform, error) {
	m, err := ReadManifest(ctx, p, desc)
	if err != nil {
		return ocispec.Platform{}, err
	}
	cfg, err := ReadConfig(ctx, p, m.Config)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("platform of manifest %s: %w", desc.Digest, err)
	}
	return cfg.Platform, nil
}

// RootFS returns the diff IDs listed by the config of manifest, one per
// layer. A count that differs from the manifest's layers is
// errdefs.ErrInvalidArgument naming both; other errors are ReadConfig's.
func RootFS(ctx context.Context, p content.Provider, manifest ocispec.Manifest) ([]digest.Digest, error) {
	cfg, err := ReadConfig(ctx, p, manifest.Config)
	if err != nil {
		return nil, err
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config %s: rootfs type %q, want \"layers\": %w", manifest.Config.Digest, cfg.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff IDs but its manifest has %d layers: %w",
			manifest.Config.Digest, len(cfg.RootFS.DiffIDs), len(manifest.Layers), errdefs.ErrInvalidArgument)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: diff ID %q: %w: %w", manifest.Config.Digest, d, err, errdefs.ErrInvalidArgument)
		}
	}
	return cfg.RootFS.DiffIDs, nil
}

// ChainIDs returns the OCI chain IDs of a stack of layers given by their diff
// IDs: chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]).
// diffIDs is not changed.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	return identity.ChainIDs(slices.Clone(diffIDs))
}
