package protoconv

import (
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/content"
)

// ContentInfoToProto converts a blob's info for the content service.
func ContentInfoToProto(info content.Info) *contentapi.Info {
	return &contentapi.Info{
		Digest:    info.Digest.String(),
		Size:      info.Size,
		CreatedAt: TimeToProto(info.CreatedAt),
		UpdatedAt: TimeToProto(info.UpdatedAt),
		Labels:    info.Labels,
	}
}

// ContentInfoFromProto converts a blob's info from the content service;
// the digest is not validated.
func ContentInfoFromProto(info *contentapi.Info) content.Info {
	return content.Info{
		Digest:    digest.Digest(info.GetDigest()),
		Size:      info.GetSize(),
		CreatedAt: TimeFromProto(info.GetCreatedAt()),
		UpdatedAt: TimeFromProto(info.GetUpdatedAt()),
		Labels:    info.GetLabels(),
	}
}

// ContentStatusToProto converts an ingest's status for the content service.
func ContentStatusToProto(st content.Status) *contentapi.Status {
	return &contentapi.Status{
		Ref:       st.Ref,
		Offset:    st.Offset,
		Total:     st.Total,
		Expected:  st.Expected.String(),
		StartedAt: TimeToProto(st.StartedAt),
		UpdatedAt: TimeToProto(st.UpdatedAt),
	}
}

// ContentStatusFromProto converts an ingest's status from the content
// service.
func ContentStatusFromProto(st *contentapi.Status) content.Status {
	return content.Status{
		Ref:       st.GetRef(),
		Offset:    st.GetOffset(),
		Total:     st.GetTotal(),
		Expected:  digest.Digest(st.GetExpected()),
		StartedAt: TimeFromProto(st.GetStartedAt()),
		UpdatedAt: TimeFromProto(st.GetUpdatedAt()),
	}
}
