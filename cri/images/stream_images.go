package images

import (
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamBatch is how many images one StreamImages message carries: well
// under gRPC's message limit whatever the names.
const streamBatch = 100

// StreamImages sends what ListImages would answer, each image exactly
// once, in batches, then ends the stream.
func (s *Service) StreamImages(req *runtime.StreamImagesRequest, stream runtime.ImageService_StreamImagesServer) error {
	imgs, err := s.list(withNamespace(stream.Context()), req.GetFilter())
	if err != nil {
		return err
	}
	for len(imgs) > 0 {
		n := min(len(imgs), streamBatch)
		if err := stream.Send(&runtime.StreamImagesResponse{Images: imgs[:n]}); err != nil {
			return err
		}
		imgs = imgs[n:]
	}
	return nil
}
