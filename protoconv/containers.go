package protoconv

import (
	containersapi "github.com/containerd/containerd/api/services/containers/v1"

	"github.com/strata-oci/strata/containers"
)

// ContainerToProto converts a container record to its containerd API form.
func ContainerToProto(c containers.Container) *containersapi.Container {
	return &containersapi.Container{
		ID:          c.ID,
		Labels:      c.Labels,
		Image:       c.Image,
		Runtime:     &containersapi.Container_Runtime{Name: c.Runtime.Name, Options: c.Runtime.Options},
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		CreatedAt:   TimeToProto(c.CreatedAt),
		UpdatedAt:   TimeToProto(c.UpdatedAt),
		Extensions:  c.Extensions,
		Sandbox:     c.SandboxID,
	}
}

// ContainerFromProto converts a container in containerd's API form to a
// record; absent fields stay zero.
func ContainerFromProto(c *containersapi.Container) containers.Container {
	if c == nil {
		return containers.Container{}
	}
	out := containers.Container{
		ID:          c.ID,
		Labels:      c.Labels,
		Image:       c.Image,
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		SandboxID:   c.Sandbox,
		Extensions:  c.Extensions,
		CreatedAt:   TimeFromProto(c.CreatedAt),
		UpdatedAt:   TimeFromProto(c.UpdatedAt),
	}
	if c.Runtime != nil {
		out.Runtime = containers.RuntimeInfo{Name: c.Runtime.Name, Options: c.Runtime.Options}
	}
	return out
}
