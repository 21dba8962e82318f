// Package ocilayout writes and reads OCI image layouts as tar streams
// (image-spec image-layout.md): the archives of `ctr images export`,
// `skopeo copy oci-archive:` and `podman save --format oci-archive`.
//
//	oci-layout           {"imageLayoutVersion":"1.0.0"}
//	index.json           an OCI index: one descriptor per image
//	blobs/sha256/<hex>   every blob once, named by its digest
//
// An image's descriptor in index.json is its target (an index or a
// manifest) with two annotations: org.opencontainers.image.ref.name, the
// tag ("1.2"), which the OCI spec and skopeo's oci-archive:FILE:1.2 use, and
// io.containerd.image.name, the full name ("ghcr.io/org/app:1.2"), which
// containerd's importer and strata's use to name the image again.
//
// Export writes index.json before the blobs and the small blobs (indexes,
// manifests, configs) before the layers, so that a streaming reader knows
// what it gets early; the layers are copied from the content store into
// the tar stream as they are read, never held in memory or in a temporary
// file.
package ocilayout

import (
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/archive/internal/imagetar"
)

// AnnotationImageName carries the full name of an image on its descriptor
// in index.json, as containerd writes it.
const AnnotationImageName = "io.containerd.image.name"

// BlobPath returns where the blob d lives in a layout: "blobs/sha256/<hex>".
func BlobPath(d digest.Digest) string { return imagetar.BlobPath(d) }
