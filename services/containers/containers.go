// Package containers serves containerd.services.containers.v1.Containers:
// the container records (containers.Store) of each call's namespace, with
// containerd's events (/containers/create, /containers/update,
// /containers/delete). Reads are open to every peer of the socket;
// creating, updating and deleting a container is for the peers the
// daemon's access policy lets run containers (access.Policy.MayRun), as a
// container's spec is root on the host once a task runs it.
package containers

import (
	"context"
	"fmt"
	"log/slog"

	eventstypes "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/protoconv"
)

// The topics of the events this service publishes, containerd's.
const (
	TopicCreate = "/containers/create"
	TopicUpdate = "/containers/update"
	TopicDelete = "/containers/delete"
)

// Publisher sends an event to the daemon's subscribers.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message) error
}

// Config is what a Service uses of the daemon.
type Config struct {
	Store     containers.Store
	Publisher Publisher
	// MayRun returns an error (errdefs.ErrPermissionDenied) when the call's
	// peer may not do what; access.Policy.MayRun.
	MayRun func(ctx context.Context, what string) error
	// Deletable, when set, refuses to delete a container that has a task
	// (errdefs.ErrFailedPrecondition); the tasks service's CheckDeletable.
	Deletable func(ctx context.Context, id string) error
	Logger    *slog.Logger
}

// Service serves the containers API.
type Service struct {
	containersapi.UnimplementedContainersServer
	c Config
}

var _ containersapi.ContainersServer = (*Service)(nil)

// New returns the service; every field of c but Logger is required.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{c: c}
}

// Register serves s on srv.
func (s *Service) Register(srv *grpc.Server) { containersapi.RegisterContainersServer(srv, s) }

// publish sends an event for a change already made: a failure is logged,
// not returned, since the change stands.
func (s *Service) publish(ctx context.Context, topic string, event proto.Message) {
	if err := s.c.Publisher.Publish(ctx, topic, event); err != nil {
		s.c.Logger.Warn("publish event", "topic", topic, "error", err)
	}
}

// Get returns the container req.ID.
func (s *Service) Get(ctx context.Context, req *containersapi.GetContainerRequest) (*containersapi.GetContainerResponse, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("get container: id is required: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.c.Store.Get(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	return &containersapi.GetContainerResponse{Container: protoconv.ContainerToProto(c)}, nil
}

// List returns the containers matching any of req.Filters.
func (s *Service) List(ctx context.Context, req *containersapi.ListContainersRequest) (*containersapi.ListContainersResponse, error) {
	cs, err := s.c.Store.List(ctx, req.Filters...)
	if err != nil {
		return nil, err
	}
	resp := &containersapi.ListContainersResponse{Containers: make([]*containersapi.Container, 0, len(cs))}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, protoconv.ContainerToProto(c))
	}
	return resp, nil
}

// ListStream sends the containers matching any of req.Filters one message
// each, so that no answer outgrows the message size limit.
func (s *Service) ListStream(req *containersapi.ListContainersRequest, stream containersapi.Containers_ListStreamServer) error {
	ctx := stream.Context()
	cs, err := s.c.Store.List(ctx, req.Filters...)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := stream.Send(&containersapi.ListContainerMessage{Container: protoconv.ContainerToProto(c)}); err != nil {
			return fmt.Errorf("list containers: send %q: %w", c.ID, err)
		}
	}
	return nil
}

// Create records req.Container.
func (s *Service) Create(ctx context.Context, req *containersapi.CreateContainerRequest) (*containersapi.CreateContainerResponse, error) {
	if req.Container == nil {
		return nil, fmt.Errorf("create container: no container given: %w", errdefs.ErrInvalidArgument)
	}
	if err := s.c.MayRun(ctx, fmt.Sprintf("create container %q", req.Container.ID)); err != nil {
		return nil, err
	}
	c, err := s.c.Store.Create(ctx, protoconv.ContainerFromProto(req.Container))
	if err != nil {
		return nil, err
	}
	s.publish(ctx, TopicCreate, &eventstypes.ContainerCreate{
		ID:      c.ID,
		Image:   c.Image,
		Runtime: &eventstypes.ContainerCreate_Runtime{Name: c.Runtime.Name, Options: c.Runtime.Options},
	})
	return &containersapi.CreateContainerResponse{Container: protoconv.ContainerToProto(c)}, nil
}

// Update changes the fields of req.Container that req.UpdateMask names (or,
// without one, labels, spec, image, snapshot key and extensions), as
// containerd's does; see containers.Store.Update.
func (s *Service) Update(ctx context.Context, req *containersapi.UpdateContainerRequest) (*containersapi.UpdateContainerResponse, error) {
	if req.Container.GetID() == "" {
		return nil, fmt.Errorf("update container: id is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := s.c.MayRun(ctx, fmt.Sprintf("update container %q", req.Container.ID)); err != nil {
		return nil, err
	}
	c, err := s.c.Store.Update(ctx, protoconv.ContainerFromProto(req.Container), req.UpdateMask.GetPaths()...)
	if err != nil {
		return nil, err
	}
	s.publish(ctx, TopicUpdate, &eventstypes.ContainerUpdate{ID: c.ID, Image: c.Image, Labels: c.Labels, SnapshotKey: c.SnapshotKey})
	return &containersapi.UpdateContainerResponse{Container: protoconv.ContainerToProto(c)}, nil
}

// Delete removes the container req.ID. Its snapshot is not removed here:
// clients remove it (ctr's and containerd's client do, after this call),
// and garbage collection frees it otherwise.
func (s *Service) Delete(ctx context.Context, req *containersapi.DeleteContainerRequest) (*emptypb.Empty, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("delete container: id is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := s.c.MayRun(ctx, fmt.Sprintf("delete container %q", req.ID)); err != nil {
		return nil, err
	}
	if s.c.Deletable != nil {
		if err := s.c.Deletable(ctx, req.ID); err != nil {
			return nil, err
		}
	}
	if err := s.c.Store.Delete(ctx, req.ID); err != nil {
		return nil, err
	}
	s.publish(ctx, TopicDelete, &eventstypes.ContainerDelete{ID: req.ID})
	return &emptypb.Empty{}, nil
}
