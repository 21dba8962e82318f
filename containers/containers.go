// Package containers defines container records, as containerd's containers
// service keeps them: the metadata of a container (its image, runtime, OCI
// spec and root filesystem snapshot), not a running process. A task (the
// tasks service, runtime/) runs a container's spec.
package containers

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/filters"
)

// Container is one container record, within a namespace.
type Container struct {
	// ID is unique within the namespace.
	ID     string
	Labels map[string]string
	// Image is the name of the image the container was made from, if any.
	Image string
	// Runtime says which runtime runs the container's task.
	Runtime RuntimeInfo
	// Spec is the OCI runtime spec, as the client encoded it (usually a
	// types.containerd.io/opencontainers/runtime-spec/1/Spec JSON Any).
	Spec *anypb.Any
	// SnapshotKey is the key of the container's root filesystem snapshot in
	// Snapshotter; empty when the client manages the root itself.
	SnapshotKey string
	Snapshotter string
	// SandboxID is the sandbox (pod) the container belongs to, if any.
	SandboxID  string
	Extensions map[string]*anypb.Any
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// RuntimeInfo names the runtime ("io.containerd.runc.v2") and its options.
type RuntimeInfo struct {
	Name    string
	Options *anypb.Any
}

// Store keeps container records, within the namespace of the context.
type Store interface {
	// Get returns errdefs.ErrNotFound when there is no such container.
	Get(ctx context.Context, id string) (Container, error)
	// List returns the containers matching any of filters (fields: id,
	// image, runtime.name, snapshotter, labels.<key>), sorted by id.
	List(ctx context.Context, filters ...string) ([]Container, error)
	// Create returns errdefs.ErrAlreadyExists when the id is taken and
	// errdefs.ErrInvalidArgument when the record is incomplete (no id, no
	// runtime name, no spec).
	Create(ctx context.Context, c Container) (Container, error)
	// Update replaces the fields named by fieldpaths ("labels",
	// "labels.<key>", "spec", "image", "snapshotkey", "snapshotter",
	// "runtime", "extensions", "extensions.<key>"); with none it replaces
	// labels, spec, image, snapshot key and extensions, as containerd's
	// does, and returns errdefs.ErrInvalidArgument when c's snapshotter or
	// runtime name differ from the record's (they only change when named).
	Update(ctx context.Context, c Container, fieldpaths ...string) (Container, error)
	// Delete returns errdefs.ErrNotFound when there is no such container.
	Delete(ctx context.Context, id string) error
}

// Adapt exposes a container's fields to filters.
func Adapt(c Container) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return c.ID, c.ID != ""
		case "image":
			return c.Image, c.Image != ""
		case "runtime":
			if len(fieldpath) == 2 && fieldpath[1] == "name" {
				return c.Runtime.Name, c.Runtime.Name != ""
			}
		case "snapshotter":
			return c.Snapshotter, c.Snapshotter != ""
		case "labels":
			return filters.LabelField(c.Labels, fieldpath)
		}
		return "", false
	})
}
