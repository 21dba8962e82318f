// Package tasks serves containerd.services.tasks.v1.Tasks: the running
// side of a container. A task is created from a container record (its
// runtime, options and spec; the containers service keeps them) and the
// rootfs mounts and stdio the client names, and runs under a runtime v2
// shim (runtime/v2) that does the work: the service resolves the
// container, hands the request to the task's shim, and turns the shim's
// answers and errors into the API's. Process state is the shim's: nothing
// is cached here, so what `ctr tasks ls` shows is what the shim knows.
//
// Creating a task or an exec process runs what the client says as root
// on the host: Config.Authorize (access.Policy.MayRun) decides who may
// create, change, signal or delete tasks; reads (Get, List, ListPids,
// Metrics, Wait) are open to every peer of the socket.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/containers"
	v2 "github.com/strata-oci/strata/runtime/v2"
)

// containerStore is what the service reads of the container records.
type containerStore interface {
	Get(ctx context.Context, id string) (containers.Container, error)
}

// Runtime runs the tasks (runtime/v2's Manager).
type Runtime interface {
	Create(ctx context.Context, o v2.CreateOpts) (*v2.Task, error)
	Get(ctx context.Context, id string) (*v2.Task, error)
	List(ctx context.Context) ([]*v2.Task, error)
	Delete(ctx context.Context, id string) (*taskapi.DeleteResponse, error)
}

// Config is what a Service uses of the daemon.
type Config struct {
	Containers containerStore
	Runtime    Runtime
	// Authorize refuses a caller that may not create, change or delete
	// tasks (what, e.g. "create task x", names the request); nil lets
	// every caller.
	Authorize func(ctx context.Context, what string) error
	Logger    *slog.Logger
}

// Service is the tasks gRPC service.
type Service struct {
	tasksapi.UnimplementedTasksServer
	c Config
}

// New returns the service over c.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Authorize == nil {
		c.Authorize = func(context.Context, string) error { return nil }
	}
	return &Service{c: c}
}

var empty = &emptypb.Empty{}

// CheckDeletable refuses to let a container go while it has a task
// (errdefs.ErrFailedPrecondition), as containerd does: the containers
// service calls it before deleting a record.
func (s *Service) CheckDeletable(ctx context.Context, id string) error {
	_, err := s.c.Runtime.Get(ctx, id)
	switch {
	case err == nil:
		return fmt.Errorf("container %s: it has a task; delete the task first: %w", id, errdefs.ErrFailedPrecondition)
	case errors.Is(err, errdefs.ErrNotFound):
		return nil
	default:
		return err
	}
}

// task returns the task of a container, naming it when there is none.
func (s *Service) task(ctx context.Context, id string) (*v2.Task, error) {
	if id == "" {
		return nil, fmt.Errorf("container id is required: %w", errdefs.ErrInvalidArgument)
	}
	t, err := s.c.Runtime.Get(ctx, id)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("container %s: no task: %w", id, errdefs.ErrNotFound)
		}
		return nil, err
	}
	return t, nil
}

// shimErr names the operation and the container of a shim's error.
func shimErr(op, id string, err error) error {
	return fmt.Errorf("%s %s: %w", op, id, v2.Err(err))
}
