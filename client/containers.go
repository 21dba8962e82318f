package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/protoconv"
)

// ContainerStore is a containers.Store over the containers service.
type ContainerStore struct {
	client containersapi.ContainersClient
}

var _ containers.Store = (*ContainerStore)(nil)

// NewContainerStore returns a container store that calls the daemon on conn.
func NewContainerStore(conn grpc.ClientConnInterface) *ContainerStore {
	return &ContainerStore{client: containersapi.NewContainersClient(conn)}
}

// Get returns the container id, or errdefs.ErrNotFound.
func (s *ContainerStore) Get(ctx context.Context, id string) (containers.Container, error) {
	resp, err := s.client.Get(withNamespaceHeader(ctx), &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return containers.Container{}, fmt.Errorf("get container %q: %w", id, errgrpc.ToNative(err))
	}
	return protoconv.ContainerFromProto(resp.Container), nil
}

// List returns the containers matching any of filters, sorted by id. It
// streams them (ListStream), so that no answer outgrows the message size
// limit.
func (s *ContainerStore) List(ctx context.Context, filters ...string) ([]containers.Container, error) {
	if err := checkFilters(filters); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.ListStream(withNamespaceHeader(ctx), &containersapi.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", errgrpc.ToNative(err))
	}
	var out []containers.Container
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", errgrpc.ToNative(err))
		}
		out = append(out, protoconv.ContainerFromProto(m.Container))
	}
}

// Create records c. It returns errdefs.ErrAlreadyExists when the id is
// taken and errdefs.ErrPermissionDenied when the daemon does not let this
// peer create containers.
func (s *ContainerStore) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	resp, err := s.client.Create(withNamespaceHeader(ctx), &containersapi.CreateContainerRequest{Container: protoconv.ContainerToProto(c)})
	if err != nil {
		return containers.Container{}, fmt.Errorf("create container %q: %w", c.ID, errgrpc.ToNative(err))
	}
	return protoconv.ContainerFromProto(resp.Container), nil
}

// Update replaces the fields of c named by fieldpaths (see
// containers.Store.Update).
func (s *ContainerStore) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	req := &containersapi.UpdateContainerRequest{Container: protoconv.ContainerToProto(c)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(withNamespaceHeader(ctx), req)
	if err != nil {
		return containers.Container{}, fmt.Errorf("update container %q: %w", c.ID, errgrpc.ToNative(err))
	}
	return protoconv.ContainerFromProto(resp.Container), nil
}

// Delete removes the container id. It returns errdefs.ErrNotFound when
// there is no such container.
func (s *ContainerStore) Delete(ctx context.Context, id string) error {
	if _, err := s.client.Delete(withNamespaceHeader(ctx), &containersapi.DeleteContainerRequest{ID: id}); err != nil {
		return fmt.Errorf("delete container %q: %w", id, errgrpc.ToNative(err))
	}
	return nil
}
