// Package images serves containerd.services.images.v1 over strata's
// image records (images.Store).
package images

import (
	"context"
	"fmt"
	"log/slog"

	apievents "github.com/containerd/containerd/api/events"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/protoconv"
)

// Service serves containerd's images API over the metadata database,
// within the namespace of each call, and tells subscribers about the
// records it changes.
type Service struct {
	imagesapi.UnimplementedImagesServer
	store  images.Store
	events events.Publisher
	log    *slog.Logger
}

// New returns the service over store, telling ev about creates, updates
// and deletes (nil: no events) and log about events it could not publish
// (nil: discarded).
func New(store images.Store, ev events.Publisher, log *slog.Logger) *Service {
	return &Service{store: store, events: ev, log: log}
}

// Register serves the service on g.
func (i *Service) Register(g *grpc.Server) { imagesapi.RegisterImagesServer(g, i) }

func (i *Service) Get(ctx context.Context, req *imagesapi.GetImageRequest) (*imagesapi.GetImageResponse, error) {
	img, err := i.store.Get(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	return &imagesapi.GetImageResponse{Image: protoconv.ImageToProto(img)}, nil
}

func (i *Service) List(ctx context.Context, req *imagesapi.ListImagesRequest) (*imagesapi.ListImagesResponse, error) {
	imgs, err := i.store.List(ctx, req.Filters...)
	if err != nil {
		return nil, err
	}
	resp := &imagesapi.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, protoconv.ImageToProto(img))
	}
	return resp, nil
}

func (i *Service) Create(ctx context.Context, req *imagesapi.CreateImageRequest) (*imagesapi.CreateImageResponse, error) {
	if req.Image.GetName() == "" {
		return nil, fmt.Errorf("create image: name is required: %w", errdefs.ErrInvalidArgument)
	}
	img, err := i.store.Create(ctx, protoconv.ImageFromProto(req.Image))
	if err != nil {
		return nil, err
	}
	events.Tell(ctx, i.events, i.log, events.TopicImageCreate, &apievents.ImageCreate{Name: img.Name, Labels: img.Labels})
	return &imagesapi.CreateImageResponse{Image: protoconv.ImageToProto(img)}, nil
}

// Update replaces what the field mask names ("target", "labels",
// "labels.<key>", "annotations"); without one, labels and target.
func (i *Service) Update(ctx context.Context, req *imagesapi.UpdateImageRequest) (*imagesapi.UpdateImageResponse, error) {
	if req.Image.GetName() == "" {
		return nil, fmt.Errorf("update image: name is required: %w", errdefs.ErrInvalidArgument)
	}
	img, err := i.store.Update(ctx, protoconv.ImageFromProto(req.Image), req.UpdateMask.GetPaths()...)
	if err != nil {
		return nil, err
	}
	events.Tell(ctx, i.events, i.log, events.TopicImageUpdate, &apievents.ImageUpdate{Name: img.Name, Labels: img.Labels})
	return &imagesapi.UpdateImageResponse{Image: protoconv.ImageToProto(img)}, nil
}

// Delete removes the image; with sync, garbage collection has run when it
// returns. With a target, an image pointing elsewhere is not found, as the
// API says.
func (i *Service) Delete(ctx context.Context, req *imagesapi.DeleteImageRequest) (*emptypb.Empty, error) {
	if req.Target != nil {
		// The store has no conditional delete, so a concurrent Update
		// between this check and the delete can slip through.
		img, err := i.store.Get(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		if img.Target.Digest.String() != req.Target.Digest {
			return nil, fmt.Errorf("image %q has target %s, not %s: %w", req.Name, img.Target.Digest, req.Target.Digest, errdefs.ErrNotFound)
		}
	}
	var opts []images.DeleteOpt
	if req.Sync {
		opts = append(opts, images.SynchronousDelete)
	}
	if err := i.store.Delete(ctx, req.Name, opts...); err != nil {
		return nil, err
	}
	events.Tell(ctx, i.events, i.log, events.TopicImageDelete, &apievents.ImageDelete{Name: req.Name})
	return &emptypb.Empty{}, nil
}
