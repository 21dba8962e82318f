package images

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes every name of the image; an image that is not there
// is removed already. Its blobs and snapshots go with the garbage
// collection the removal schedules.
func (s *Service) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ctx = withNamespace(ctx)
	name, err := specImage(req.GetImage())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.lookup(ctx, name)
	if notFound(err) {
		return &runtime.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.fsInfo.forget()
	for _, rec := range img.records {
		if err := s.images.Delete(ctx, rec.Name); err != nil && !notFound(err) {
			return nil, fmt.Errorf("remove image %s: name %q: %w", img.id, rec.Name, err)
		}
	}
	return &runtime.RemoveImageResponse{}, nil
}
