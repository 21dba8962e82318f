package metadata

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// ImageStore keeps image records per namespace.
type ImageStore struct{ db *DB }

var _ images.Store = (*ImageStore)(nil)

// Images returns the image store.
func (db *DB) Images() *ImageStore { return &ImageStore{db: db} }

func readImage(name string, b *bolt.Bucket) images.Image {
	img := images.Image{
		Name:      name,
		Labels:    boltutil.ReadMap(b, bucketLabels),
		CreatedAt: boltutil.ReadTime(b, keyCreatedAt),
		UpdatedAt: boltutil.ReadTime(b, keyUpdatedAt),
	}
	if tb := b.Bucket(bucketTarget); tb != nil {
		img.Target = ocispec.Descriptor{
			Digest:      digest.Digest(tb.Get(keyDigest)),
			MediaType:   string(tb.Get(keyMediaType)),
			Size:        boltutil.ReadInt(tb, keySize),
			Annotations: boltutil.ReadMap(tb, bucketAnnots),
		}
	}
	return img
}

func writeImage(b *bolt.Bucket, img images.Image) error {
	if err := boltutil.ReplaceMap(b, bucketLabels, img.Labels); err != nil {
		return err
	}
	if err := boltutil.PutTime(b, keyUpdatedAt, img.UpdatedAt); err != nil {
		return err
	}
	if err := b.DeleteBucket(bucketTarget); err != nil && !schema.IsBucketNotFound(err) {
		return err
	}
	tb, err := b.CreateBucket(bucketTarget)
	if err != nil {
		return err
	}
	if err := tb.Put(keyDigest, []byte(img.Target.Digest)); err != nil {
		return err
	}
	if err := tb.Put(keyMediaType, []byte(img.Target.MediaType)); err != nil {
		return err
	}
	if err := boltutil.PutInt(tb, keySize, img.Target.Size); err != nil {
		return err
	}
	return boltutil.PutMap(tb, bucketAnnots, img.Target.Annotations)
}

func validateImage(img images.Image) error {
	if strings.TrimSpace(img.Name) == "" {
		return fmt.Errorf("image name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if img.Target.MediaType == "" {
		return fmt.Errorf("image %q: target media type must not be empty: %w", img.Name, errdefs.ErrInvalidArgument)
	}
	if err := img.Target.Digest.Validate(); err != nil {
		return fmt.Errorf("image %q: target digest %q: %w: %w", img.Name, img.Target.Digest, err, errdefs.ErrInvalidArgument)
	}
	if img.Target.Size < 0 {
		return fmt.Errorf("image %q: target size %d: %w", img.Name, img.Target.Size, errdefs.ErrInvalidArgument)
	}
	return lbl.Validate(img.Labels)
}

// Get returns the image name.
func (s *ImageStore) Get(ctx context.Context, name string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	var img images.Image
	err = s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketImages, []byte(name))
		if b == nil {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		img = readImage(name, b)
		return nil
	})
	return img, err
}

// List returns the images matching any of fs, sorted by name.
func (s *ImageStore) List(ctx context.Context, fs ...string) ([]images.Image, error) {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return nil, err
	}
	var out []images.Image
	err = s.db.view(func(tx *bolt.Tx) error {
		ib := nsBucket(tx, ns, bucketImages)
		if ib == nil {
			return nil
		}
		return ib.ForEachBucket(func(k []byte) error {
			img := readImage(string(k), ib.Bucket(k))
			if filter.Match(images.Adapt(img)) {
				out = append(out, img)
			}
			return nil
		})
	})
	return out, err
}

// Create records image.
func (s *ImageStore) Create(ctx context.Context, image images.Image) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	if err := validateImage(image); err != nil {
		return images.Image{}, err
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		ib, err := createNSBucket(tx, ns, bucketImages)
		if err != nil {
			return err
		}
		if ib.Bucket([]byte(image.Name)) != nil {
			return fmt.Errorf("image %q in namespace %q: %w", image.Name, ns, errdefs.ErrAlreadyExists)
		}
		b, err := ib.CreateBucket([]byte(image.Name))
		if err != nil {
			return err
		}
		image.CreatedAt = time.Now().UTC()
		image.UpdatedAt = image.CreatedAt
		if err := boltutil.PutTime(b, keyCreatedAt, image.CreatedAt); err != nil {
			return err
		}
		return writeImage(b, image)
	})
	return image, err
}

// Update changes the fields of image named by fieldpaths.
func (s *ImageStore) Update(ctx context.Context, image images.Image, fieldpaths ...string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	if image.Name == "" {
		return images.Image{}, fmt.Errorf("image name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var out images.Image
	err = s.db.update(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketImages, []byte(image.Name))
		if b == nil {
			return fmt.Errorf("image %q in namespace %q: %w", image.Name, ns, errdefs.ErrNotFound)
		}
		cur := readImage(image.Name, b)
		paths := fieldpaths
		if len(paths) == 0 {
			paths = []string{"labels", "target"}
		}
		var labelPaths []string
		for _, fp := range paths {
			switch {
			case fp == "target":
				cur.Target = image.Target
			case fp == "annotations" || fp == "target.annotations":
				cur.Target.Annotations = image.Target.Annotations
			default:
				labelPaths = append(labelPaths, fp)
			}
		}
		labels, err := lbl.Update(cur.Labels, image.Labels, labelPaths)
		if err != nil {
			return fmt.Errorf("update image %q: %w", image.Name, err)
		}
		cur.Labels = labels
		if err := validateImage(cur); err != nil {
			return err
		}
		cur.UpdatedAt = time.Now().UTC()
		if err := writeImage(b, cur); err != nil {
			return err
		}
		out = cur
		return nil
	})
	return out, err
}

// Delete removes the image name and schedules (or, with
// images.SynchronousDelete, runs) garbage collection.
func (s *ImageStore) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	var do images.DeleteOptions
	for _, o := range opts {
		if err := o(&do); err != nil {
			return err
		}
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		ib := nsBucket(tx, ns, bucketImages)
		if ib == nil || ib.Bucket([]byte(name)) == nil {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		return ib.DeleteBucket([]byte(name))
	})
	if err != nil {
		return err
	}
	if do.Synchronous {
		_, err := s.db.GarbageCollect(ctx, GCOptions{})
		return err
	}
	s.db.scheduleGC()
	return nil
}
