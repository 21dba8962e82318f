// Package images defines image records: a name pointing at a root descriptor
// (an index or a manifest) with labels.
package images

import (
	"context"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/filters"
)

// Image is a named root descriptor.
type Image struct {
	Name      string
	Labels    map[string]string
	Target    ocispec.Descriptor
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DeleteOpt configures an image deletion.
type DeleteOpt func(*DeleteOptions) error

// DeleteOptions says how an image is deleted.
type DeleteOptions struct {
	// Synchronous runs garbage collection before Delete returns.
	Synchronous bool
}

// SynchronousDelete makes Delete wait for garbage collection.
func SynchronousDelete(o *DeleteOptions) error { o.Synchronous = true; return nil }

// Store keeps image records, within the namespace of the context.
type Store interface {
	// Get returns errdefs.ErrNotFound when there is no such image.
	Get(ctx context.Context, name string) (Image, error)
	// List returns the images matching any of filters (fields: name,
	// target.digest, target.mediatype, labels.<key>), sorted by name.
	List(ctx context.Context, filters ...string) ([]Image, error)
	// Create returns errdefs.ErrAlreadyExists when the name is taken.
	Create(ctx context.Context, image Image) (Image, error)
	// Update replaces the fields named by fieldpaths ("labels",
	// "labels.<key>", "target"); with none it replaces labels and target.
	Update(ctx context.Context, image Image, fieldpaths ...string) (Image, error)
	Delete(ctx context.Context, name string, opts ...DeleteOpt) error
}

// Adapt exposes an image's fields to filters.
func Adapt(img Image) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "name":
			return img.Name, len(img.Name) > 0
		case "target":
			if len(fieldpath) < 2 {
				return "", false
			}
			switch fieldpath[1] {
			case "digest":
				return img.Target.Digest.String(), len(img.Target.Digest) > 0
			case "mediatype":
				return img.Target.MediaType, len(img.Target.MediaType) > 0
			}
		case "labels":
			return filters.LabelField(img.Labels, fieldpath)
		}
		return "", false
	})
}
