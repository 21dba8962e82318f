package images

import (
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	lbl "github.com/strata-oci/strata/labels"
)

// ChildrenLabels returns the garbage collection labels of the index or
// manifest desc whose body is b: an edge to each child, so that the
// children live as long as it does (containerd's SetChildrenLabels):
//
//	index     containerd.io/gc.ref.content.m.<i>   its manifests, in order
//	manifest  containerd.io/gc.ref.content.config  its config
//	          containerd.io/gc.ref.content.l.<i>   its layers, in order
//
// Other media types have none (nil). A body that is not JSON of its shape
// is errdefs.ErrInvalidArgument naming desc. Pulls and imports label
// what they store with it, so both give GC the same edges.
func ChildrenLabels(desc ocispec.Descriptor, b []byte) (map[string]string, error) {
	switch {
	case IsIndex(desc.MediaType):
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		labels := make(map[string]string, len(idx.Manifests))
		for i, m := range idx.Manifests {
			labels[fmt.Sprintf("%s%d", lbl.GCRefManifestPrefix, i)] = m.Digest.String()
		}
		return labels, nil
	case IsManifest(desc.MediaType):
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		labels := make(map[string]string, len(m.Layers)+1)
		labels[lbl.GCRefConfig] = m.Config.Digest.String()
		for i, l := range m.Layers {
			labels[fmt.Sprintf("%s%d", lbl.GCRefLayerPrefix, i)] = l.Digest.String()
		}
		return labels, nil
	}
	return nil, nil
}
