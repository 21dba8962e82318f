package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/identifiers"
	v2 "github.com/strata-oci/strata/runtime/v2"
)

// Create makes a container's task: its shim started, the rootfs mounted,
// the init process created (not started). The container must exist
// (errdefs.ErrNotFound) and have no task (errdefs.ErrAlreadyExists).
func (s *Service) Create(ctx context.Context, req *tasksapi.CreateTaskRequest) (*tasksapi.CreateTaskResponse, error) {
	id := req.GetContainerID()
	if err := s.c.Authorize(ctx, "create task "+id); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("create task: container id is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetCheckpoint() != nil {
		return nil, fmt.Errorf("create task %s from checkpoint %s: strata does not restore checkpoints: %w", id, req.GetCheckpoint().GetDigest(), errdefs.ErrNotImplemented)
	}
	c, err := s.c.Containers.Get(ctx, id)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("create task: container %s: %w", id, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("create task %s: %w", id, err)
	}
	t, err := s.c.Runtime.Create(ctx, v2.CreateOpts{
		ID: id, Runtime: c.Runtime.Name, RuntimePath: req.GetRuntimePath(),
		RuntimeOptions: c.Runtime.Options, TaskOptions: req.GetOptions(),
		Spec: c.Spec, Rootfs: req.GetRootfs(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr(), Terminal: req.GetTerminal(),
	})
	if err != nil {
		return nil, err
	}
	s.c.Logger.Info("task created", "id", id, "runtime", c.Runtime.Name, "pid", t.Pid)
	return &tasksapi.CreateTaskResponse{ContainerID: id, Pid: t.Pid}, nil
}

// Start starts a task's init process, or one of its exec processes.
func (s *Service) Start(ctx context.Context, req *tasksapi.StartRequest) (*tasksapi.StartResponse, error) {
	if err := s.c.Authorize(ctx, "start task "+req.GetContainerID()); err != nil {
		return nil, err
	}
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	resp, err := t.API().Start(ctx, &taskapi.StartRequest{ID: t.ID, ExecID: req.GetExecID()})
	if err != nil {
		return nil, shimErr("start task", t.ID, err)
	}
	return &tasksapi.StartResponse{Pid: resp.GetPid()}, nil
}

// Delete deletes a stopped task: its shim ends, its rootfs is unmounted
// and its bundle removed. A running task is errdefs.ErrFailedPrecondition.
func (s *Service) Delete(ctx context.Context, req *tasksapi.DeleteTaskRequest) (*tasksapi.DeleteResponse, error) {
	if err := s.c.Authorize(ctx, "delete task "+req.GetContainerID()); err != nil {
		return nil, err
	}
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	// runc's shim answers a bare error for a running task: say what it is.
	if st, err := s.state(ctx, t, ""); err == nil {
		switch st.GetStatus() {
		case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
			return nil, fmt.Errorf("delete task %s: it is %s; kill it first: %w", t.ID, strings.ToLower(st.GetStatus().String()), errdefs.ErrFailedPrecondition)
		}
	}
	resp, err := s.c.Runtime.Delete(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	return &tasksapi.DeleteResponse{ID: t.ID, Pid: resp.GetPid(), ExitStatus: resp.GetExitStatus(), ExitedAt: resp.GetExitedAt()}, nil
}

// DeleteProcess deletes a stopped exec process of a task.
func (s *Service) DeleteProcess(ctx context.Context, req *tasksapi.DeleteProcessRequest) (*tasksapi.DeleteResponse, error) {
	if err := s.c.Authorize(ctx, "delete process of task "+req.GetContainerID()); err != nil {
		return nil, err
	}
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	if req.GetExecID() == "" {
		return nil, fmt.Errorf("delete process of %s: exec id is required (Delete deletes the task): %w", t.ID, errdefs.ErrInvalidArgument)
	}
	resp, err := t.API().Delete(ctx, &taskapi.DeleteRequest{ID: t.ID, ExecID: req.GetExecID()})
	if err != nil {
		return nil, shimErr("delete process "+req.GetExecID()+" of", t.ID, err)
	}
	return &tasksapi.DeleteResponse{ID: req.GetExecID(), Pid: resp.GetPid(), ExitStatus: resp.GetExitStatus(), ExitedAt: resp.GetExitedAt()}, nil
}

// Exec adds a process to a running task (started with Start and its exec
// id).
func (s *Service) Exec(ctx context.Context, req *tasksapi.ExecProcessRequest) (*emptypb.Empty, error) {
	id := req.GetContainerID()
	if err := s.c.Authorize(ctx, "exec in task "+id); err != nil {
		return nil, err
	}
	t, err := s.task(ctx, id)
	if err != nil {
		return nil, err
	}
	// The shim names files after it in the bundle (runc's pid file).
	if err := identifiers.Validate("exec process", req.GetExecID()); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	if _, err := t.API().Exec(ctx, &taskapi.ExecProcessRequest{ID: t.ID, ExecID: req.GetExecID(), Terminal: req.GetTerminal(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr(), Spec: req.GetSpec()}); err != nil {
		return nil, shimErr("exec "+req.GetExecID()+" in", t.ID, err)
	}
	return empty, nil
}

// Checkpoint is not supported: errdefs.ErrNotImplemented. It is checked
// as what it would be (it writes a task's memory where the client says),
// so that a peer that may not is told so, now and once it is supported.
func (s *Service) Checkpoint(ctx context.Context, req *tasksapi.CheckpointTaskRequest) (*tasksapi.CheckpointTaskResponse, error) {
	if err := s.c.Authorize(ctx, "checkpoint task "+req.GetContainerID()); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("checkpoint task %s: strata does not checkpoint tasks (CRIU): %w", req.GetContainerID(), errdefs.ErrNotImplemented)
}
