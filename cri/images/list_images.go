package images

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists the images, all of them or the one the filter names.
func (s *Service) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	imgs, err := s.list(withNamespace(ctx), req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtime.ListImagesResponse{Images: imgs}, nil
}

// list returns the images f selects, sorted by id.
func (s *Service) list(ctx context.Context, f *runtime.ImageFilter) ([]*runtime.Image, error) {
	if name := f.GetImage().GetImage(); name != "" {
		img, err := s.lookup(ctx, name)
		if notFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*runtime.Image{s.cri(img)}, nil
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtime.Image, 0, len(all))
	for _, img := range sortedImages(all) {
		out = append(out, s.cri(img))
	}
	return out, nil
}
