package protoconv

import (
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/images"
)

// ImageToProto converts an image record to its containerd API form.
func ImageToProto(img images.Image) *imagesapi.Image {
	return &imagesapi.Image{
		Name:      img.Name,
		Labels:    img.Labels,
		Target:    DescriptorToProto(img.Target),
		CreatedAt: timestamppb.New(img.CreatedAt),
		UpdatedAt: timestamppb.New(img.UpdatedAt),
	}
}

// ImageFromProto converts an image in containerd's API form to a record;
// absent fields stay zero.
func ImageFromProto(img *imagesapi.Image) images.Image {
	if img == nil {
		return images.Image{}
	}
	out := images.Image{Name: img.Name, Labels: img.Labels, Target: DescriptorFromProto(img.Target)}
	if img.CreatedAt != nil {
		out.CreatedAt = img.CreatedAt.AsTime()
	}
	if img.UpdatedAt != nil {
		out.UpdatedAt = img.UpdatedAt.AsTime()
	}
	return out
}

// DescriptorToProto converts a descriptor (media type, digest, size,
// annotations; the API has no other fields).
func DescriptorToProto(d ocispec.Descriptor) *types.Descriptor {
	return &types.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations}
}

// DescriptorFromProto converts a descriptor; the digest is not validated.
func DescriptorFromProto(d *types.Descriptor) ocispec.Descriptor {
	if d == nil {
		return ocispec.Descriptor{}
	}
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: digest.Digest(d.Digest), Size: d.Size, Annotations: d.Annotations}
}
