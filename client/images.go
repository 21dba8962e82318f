package client

import (
	"context"
	"fmt"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/protoconv"
)

// ImageStore is an images.Store over the images service.
type ImageStore struct {
	client imagesapi.ImagesClient
}

var _ images.Store = (*ImageStore)(nil)

// NewImageStore returns an image store that calls the daemon on conn.
func NewImageStore(conn grpc.ClientConnInterface) *ImageStore {
	return &ImageStore{client: imagesapi.NewImagesClient(conn)}
}

// Get returns the image name, or errdefs.ErrNotFound.
func (s *ImageStore) Get(ctx context.Context, name string) (images.Image, error) {
	resp, err := s.client.Get(withNamespaceHeader(ctx), &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return images.Image{}, fmt.Errorf("get image %q: %w", name, errgrpc.ToNative(err))
	}
	return protoconv.ImageFromProto(resp.Image), nil
}

// List returns the images matching any of filters, sorted by name.
func (s *ImageStore) List(ctx context.Context, filters ...string) ([]images.Image, error) {
	if err := checkFilters(filters); err != nil {
		return nil, err
	}
	resp, err := s.client.List(withNamespaceHeader(ctx), &imagesapi.ListImagesRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", errgrpc.ToNative(err))
	}
	var out []images.Image
	for _, img := range resp.Images {
		out = append(out, protoconv.ImageFromProto(img))
	}
	return out, nil
}

// Create records image. It returns errdefs.ErrAlreadyExists when the name
// is taken.
func (s *ImageStore) Create(ctx context.Context, image images.Image) (images.Image, error) {
	resp, err := s.client.Create(withNamespaceHeader(ctx), &imagesapi.CreateImageRequest{Image: protoconv.ImageToProto(image)})
	if err != nil {
		return images.Image{}, fmt.Errorf("create image %q: %w", image.Name, errgrpc.ToNative(err))
	}
	return protoconv.ImageFromProto(resp.Image), nil
}

// Update replaces the fields of image named by fieldpaths ("target",
// "labels", "labels.<key>"); with none, labels and target.
func (s *ImageStore) Update(ctx context.Context, image images.Image, fieldpaths ...string) (images.Image, error) {
	req := &imagesapi.UpdateImageRequest{Image: protoconv.ImageToProto(image)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(withNamespaceHeader(ctx), req)
	if err != nil {
		return images.Image{}, fmt.Errorf("update image %q: %w", image.Name, errgrpc.ToNative(err))
	}
	return protoconv.ImageFromProto(resp.Image), nil
}

// Delete removes the image name; with images.SynchronousDelete garbage
// collection has run when it returns. It returns errdefs.ErrNotFound when
// there is no such image.
func (s *ImageStore) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	var do images.DeleteOptions
	for _, o := range opts {
		if err := o(&do); err != nil {
			return err
		}
	}
	_, err := s.client.Delete(withNamespaceHeader(ctx), &imagesapi.DeleteImageRequest{Name: name, Sync: do.Synchronous})
	if err != nil {
		return fmt.Errorf("delete image %q: %w", name, errgrpc.ToNative(err))
	}
	return nil
}
