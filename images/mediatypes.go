package images

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

// Docker's media types, which image-spec does not define.
const (
	MediaTypeDockerSchema2Manifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerSchema2ManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema2Config       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerSchema2LayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerSchema2Layer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// MaxManifestSize bounds the manifests and indexes strata reads: they come
// from registries and archives, which may be hostile.
const MaxManifestSize = 4 << 20

// IsIndex reports whether mediaType is an OCI index or a Docker manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerSchema2ManifestList
}

// IsManifest reports whether mediaType is an OCI or Docker schema 2 manifest.
func IsManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerSchema2Manifest
}

// Children returns the descriptors that the index or manifest desc refers to
// (manifests; config and layers), and nothing for other media types.
func Children(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !IsIndex(desc.MediaType) && !IsManifest(desc.MediaType) {
		return nil, nil
	}
	b, err := content.ReadBlob(ctx, p, desc, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	// Both shapes in one struct: media types lie, the fields do not.
	var doc struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse %s %s: %w: %w", desc.MediaType, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	var out []ocispec.Descriptor
	out = append(out, doc.Manifests...)
	if doc.Config != nil {
		out = append(out, *doc.Config)
	}
	out = append(out, doc.Layers...)
	for _, d := range out {
		if err := d.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("parse %s %s: child digest %q: %w: %w", desc.MediaType, desc.Digest, d.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}
