package images

import (
	"context"
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	imgs "github.com/strata-oci/strata/images"
)

// verboseInfo is ImageStatus' verbose "info", shaped as containerd's CRI
// plugin gives it.
type verboseInfo struct {
	ChainID   string        `json:"chainID"`
	ImageSpec ocispec.Image `json:"imageSpec"`
}

// ImageStatus returns the image, or a nil image (not an error) when there
// is none by that name or id.
func (s *Service) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ctx = withNamespace(ctx)
	name, err := specImage(req.GetImage())
	if err != nil {
		return nil, err
	}
	img, err := s.lookup(ctx, name)
	if notFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: s.cri(img)}
	if req.GetVerbose() {
		cfg := img.parts.config
		var chain digest.Digest
		if ids := imgs.ChainIDs(cfg.RootFS.DiffIDs); len(ids) > 0 {
			chain = ids[len(ids)-1]
		}
		b, err := json.Marshal(verboseInfo{ChainID: chain.String(), ImageSpec: cfg})
		if err != nil {
			return nil, fmt.Errorf("image %s: verbose info: %w", img.id, err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}
