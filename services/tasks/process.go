package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/filters"
	v2 "github.com/strata-oci/strata/runtime/v2"
)

func process(id string, st *taskapi.StateResponse) *tasktypes.Process {
	return &tasktypes.Process{ContainerID: id, ID: st.GetID(), Pid: st.GetPid(), Status: st.GetStatus(),
		Stdin: st.GetStdin(), Stdout: st.GetStdout(), Stderr: st.GetStderr(), Terminal: st.GetTerminal(),
		ExitStatus: st.GetExitStatus(), ExitedAt: st.GetExitedAt()}
}

// Get returns the state of a task's init process or of one exec process.
func (s *Service) Get(ctx context.Context, req *tasksapi.GetRequest) (*tasksapi.GetResponse, error) {
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	st, err := s.state(ctx, t, req.GetExecID())
	if err != nil {
		return nil, err
	}
	return &tasksapi.GetResponse{Process: process(t.ID, st)}, nil
}

// stateTimeout bounds a shim's answer to State, as containerd's
// io.containerd.timeout.task.state does: List asks every shim of the
// namespace, and one that never answers (stopped, deadlocked) must not
// hold every client's List.
const stateTimeout = 2 * time.Second

// state asks a task's shim for the state of its init process or of an
// exec process; a shim that does not answer in stateTimeout is
// errdefs.ErrUnavailable.
func (s *Service) state(ctx context.Context, t *v2.Task, execID string) (*taskapi.StateResponse, error) {
	sctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	st, err := t.API().State(sctx, &taskapi.StateRequest{ID: t.ID, ExecID: execID})
	switch {
	case err == nil:
		return st, nil
	case ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("state of task %s: its shim (%s) did not answer in %s: %w", t.ID, t.Binary, stateTimeout, errdefs.ErrUnavailable)
	default:
		return nil, shimErr("state of task", t.ID, err)
	}
}

// List returns the tasks of the namespace. A task whose shim does not
// answer is listed as UNKNOWN rather than hidden.
func (s *Service) List(ctx context.Context, req *tasksapi.ListTasksRequest) (*tasksapi.ListTasksResponse, error) {
	filter, err := filters.ParseAll(req.GetFilter())
	if err != nil {
		return nil, err
	}
	tasks, err := s.c.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.ListTasksResponse{}
	for _, t := range tasks {
		st, err := s.state(ctx, t, "")
		var p *tasktypes.Process
		switch {
		case err == nil:
			p = process(t.ID, st)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("list tasks: %w", ctx.Err())
		case errors.Is(err, errdefs.ErrNotFound):
			continue // deleted meanwhile
		default:
			s.c.Logger.Warn("task state", "id", t.ID, "error", err)
			p = &tasktypes.Process{ContainerID: t.ID, ID: t.ID, Status: tasktypes.Status_UNKNOWN}
		}
		if filter.Match(taskFields(t, p)) {
			resp.Tasks = append(resp.Tasks, p)
		}
	}
	return resp, nil
}

// taskFields lets filters match id, runtime and status.
func taskFields(t *v2.Task, p *tasktypes.Process) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "id", "container_id":
			return t.ID, true
		case "runtime":
			return t.Runtime, true
		case "status":
			if p != nil {
				return p.Status.String(), true
			}
		case "namespace":
			return t.Namespace, true
		}
		return "", false
	})
}

// Kill signals a task's init process, all its processes, or one exec.
func (s *Service) Kill(ctx context.Context, req *tasksapi.KillRequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), fmt.Sprintf("kill (signal %d) task", req.GetSignal()), func(t *v2.Task) error {
		_, err := t.API().Kill(ctx, &taskapi.KillRequest{ID: t.ID, ExecID: req.GetExecID(), Signal: req.GetSignal(), All: req.GetAll()})
		return err
	})
}

// ResizePty resizes the terminal of a process.
func (s *Service) ResizePty(ctx context.Context, req *tasksapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), "resize terminal of task", func(t *v2.Task) error {
		_, err := t.API().ResizePty(ctx, &taskapi.ResizePtyRequest{ID: t.ID, ExecID: req.GetExecID(), Width: req.GetWidth(), Height: req.GetHeight()})
		return err
	})
}

// CloseIO closes a process's stdin.
func (s *Service) CloseIO(ctx context.Context, req *tasksapi.CloseIORequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), "close stdin of task", func(t *v2.Task) error {
		_, err := t.API().CloseIO(ctx, &taskapi.CloseIORequest{ID: t.ID, ExecID: req.GetExecID(), Stdin: req.GetStdin()})
		return err
	})
}

// Pause freezes a task's processes.
func (s *Service) Pause(ctx context.Context, req *tasksapi.PauseTaskRequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), "pause task", func(t *v2.Task) error {
		_, err := t.API().Pause(ctx, &taskapi.PauseRequest{ID: t.ID})
		return err
	})
}

// Resume thaws a paused task.
func (s *Service) Resume(ctx context.Context, req *tasksapi.ResumeTaskRequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), "resume task", func(t *v2.Task) error {
		_, err := t.API().Resume(ctx, &taskapi.ResumeRequest{ID: t.ID})
		return err
	})
}

// ListPids lists the processes of a task.
func (s *Service) ListPids(ctx context.Context, req *tasksapi.ListPidsRequest) (*tasksapi.ListPidsResponse, error) {
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	resp, err := t.API().Pids(ctx, &taskapi.PidsRequest{ID: t.ID})
	if err != nil {
		return nil, shimErr("list processes of", t.ID, err)
	}
	return &tasksapi.ListPidsResponse{Processes: resp.GetProcesses()}, nil
}

// Update changes a task's resources (an Any of the runtime's resources
// type, runtime-spec LinuxResources for runc) and annotations.
func (s *Service) Update(ctx context.Context, req *tasksapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return s.act(ctx, req.GetContainerID(), "update task", func(t *v2.Task) error {
		_, err := t.API().Update(ctx, &taskapi.UpdateTaskRequest{ID: t.ID, Resources: req.GetResources(), Annotations: req.GetAnnotations()})
		return err
	})
}

// act is a call that changes a task and answers nothing: it asks the
// access policy whether the caller may do what (a verb and "task") to
// the task of container id, then runs call against the task's shim,
// naming what, the task and the cause when the shim refuses.
func (s *Service) act(ctx context.Context, id, what string, call func(t *v2.Task) error) (*emptypb.Empty, error) {
	if err := s.c.Authorize(ctx, what+" "+id); err != nil {
		return nil, err
	}
	t, err := s.task(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := call(t); err != nil {
		return nil, shimErr(what, t.ID, err)
	}
	return empty, nil
}

// Metrics returns the shims' statistics (cgroup metrics for runc) of the
// tasks matching the filters (id, runtime, namespace).
func (s *Service) Metrics(ctx context.Context, req *tasksapi.MetricsRequest) (*tasksapi.MetricsResponse, error) {
	filter, err := filters.ParseAll(req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	tasks, err := s.c.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.MetricsResponse{}
	for _, t := range tasks {
		if !filter.Match(taskFields(t, nil)) {
			continue
		}
		st, err := t.API().Stats(ctx, &taskapi.StatsRequest{ID: t.ID})
		if err != nil {
			err = v2.Err(err)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("metrics of task %s: %w", t.ID, err)
		}
		resp.Metrics = append(resp.Metrics, &types.Metric{Timestamp: timestamppb.Now(), ID: t.ID, Data: st.GetStats()})
	}
	return resp, nil
}

// Wait returns when a task's init process, or an exec process, exits,
// with its exit status.
func (s *Service) Wait(ctx context.Context, req *tasksapi.WaitRequest) (*tasksapi.WaitResponse, error) {
	t, err := s.task(ctx, req.GetContainerID())
	if err != nil {
		return nil, err
	}
	resp, err := t.API().Wait(ctx, &taskapi.WaitRequest{ID: t.ID, ExecID: req.GetExecID()})
	if err != nil {
		return nil, shimErr("wait for task", t.ID, err)
	}
	return &tasksapi.WaitResponse{ExitStatus: resp.GetExitStatus(), ExitedAt: resp.GetExitedAt()}, nil
}
