package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/namespaces"
)

// Wait waits for the container's task to exit and returns its exit
// status; a container without a task is errdefs.ErrFailedPrecondition.
func (e *Engine) Wait(ctx context.Context, id string) (uint32, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return 0, err
	}
	resp, err := e.cfg.Tasks.Wait(gctx, &tasksapi.WaitRequest{ContainerID: id})
	if err != nil {
		err = errgrpc.ToNative(err)
		if errors.Is(err, errdefs.ErrNotFound) {
			return 0, fmt.Errorf("container %s is not running: %w", shortID(id), errdefs.ErrFailedPrecondition)
		}
		return 0, fmt.Errorf("container %s: wait: %w", shortID(id), err)
	}
	return resp.ExitStatus, nil
}

// Kill sends sig to the container's processes; a container that does not
// run is errdefs.ErrFailedPrecondition.
func (e *Engine) Kill(ctx context.Context, id string, sig unix.Signal) error {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return err
	}
	p, err := e.task(gctx, id)
	if err != nil {
		return err
	}
	if p == nil || p.Status != tasktypes.Status_RUNNING && p.Status != tasktypes.Status_PAUSED {
		return fmt.Errorf("container %s is not running: %w", shortID(id), errdefs.ErrFailedPrecondition)
	}
	if _, err := e.cfg.Tasks.Kill(gctx, &tasksapi.KillRequest{ContainerID: id, Signal: uint32(sig)}); err != nil {
		return fmt.Errorf("container %s: kill %s: %w", shortID(id), unix.SignalName(sig), errgrpc.ToNative(err))
	}
	return nil
}

// Stop sends the container's stop signal (the image's StopSignal,
// SIGTERM by default), SIGKILL after timeout when it still runs, and then
// deletes the task and tears down its network, keeping the exit status.
// A container that does not run is stopped already: Stop cleans up after
// its task, if any, and returns nil.
func (e *Engine) Stop(ctx context.Context, id string, timeout time.Duration) error {
	gctx, c, p, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if p != nil && p.Status != tasktypes.Status_STOPPED {
		sig := unix.SIGTERM
		if n, err := strconv.Atoi(c.Labels[labels.ContainerStopSignal]); err == nil && n > 0 {
			sig = unix.Signal(n)
		}
		if err := e.stopTask(gctx, id, sig, timeout); err != nil {
			return err
		}
	}
	if p != nil || c.Labels[labels.ContainerFinishedAt] == "" {
		if err := e.finish(ctx, c); err != nil {
			return err
		}
	}
	if c.Labels[labels.ContainerAutoRemove] == "true" {
		return e.Remove(ctx, id, RemoveOptions{Volumes: true})
	}
	return nil
}

// stopTask signals the task and waits for it to exit, killing it after
// timeout.
func (e *Engine) stopTask(gctx context.Context, id string, sig unix.Signal, timeout time.Duration) error {
	// Wait is asked before the signal so that no exit is missed.
	waited := make(chan error, 1)
	wctx, cancel := context.WithCancel(gctx)
	defer cancel()
	go func() {
		_, err := e.cfg.Tasks.Wait(wctx, &tasksapi.WaitRequest{ContainerID: id})
		waited <- err
	}()
	if _, err := e.cfg.Tasks.Kill(gctx, &tasksapi.KillRequest{ContainerID: id, Signal: uint32(sig)}); err != nil {
		if err = errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: signal %s: %w", shortID(id), unix.SignalName(sig), err)
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-waited:
		if err != nil {
			return fmt.Errorf("container %s: wait: %w", shortID(id), errgrpc.ToNative(err))
		}
		return nil
	case <-timer.C:
		e.log.Info("container did not stop in time; killing it", "container", id, "signal", unix.SignalName(sig), "timeout", timeout)
	case <-gctx.Done():
		return gctx.Err()
	}
	if _, err := e.cfg.Tasks.Kill(gctx, &tasksapi.KillRequest{ContainerID: id, Signal: uint32(unix.SIGKILL), All: true}); err != nil {
		if err = errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: kill: %w", shortID(id), err)
		}
	}
	if err := <-waited; err != nil {
		return fmt.Errorf("container %s: wait: %w", shortID(id), errgrpc.ToNative(err))
	}
	return nil
}

// RemoveOptions say how Remove treats a running container and its
// volumes.
type RemoveOptions struct {
	// Force kills a running container first (rm -f).
	Force bool
	// Volumes also removes the container's anonymous volumes that no
	// other container uses (rm -v, --rm); named volumes stay, as docker's.
	Volumes bool
}

// Remove removes a container: its task (which must have stopped unless
// Force), its network, its record, its snapshot and its logs, and with
// o.Volumes its anonymous volumes. A running container without Force is
// errdefs.ErrFailedPrecondition.
func (e *Engine) Remove(ctx context.Context, id string, o RemoveOptions) error {
	gctx, c, p, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if p != nil && p.Status != tasktypes.Status_STOPPED {
		if !o.Force {
			return fmt.Errorf("container %s is running: stop it first or remove it with -f: %w", shortID(id), errdefs.ErrFailedPrecondition)
		}
		if err := e.stopTask(gctx, id, unix.SIGKILL, 0); err != nil {
			return err
		}
	}
	if p != nil {
		if _, err := e.cfg.Tasks.Delete(gctx, &tasksapi.DeleteTaskRequest{ContainerID: id}); err != nil {
			if err = errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("container %s: delete task: %w", shortID(id), err)
			}
		}
	}
	if e.cfg.Network != nil {
		if err := e.cfg.Network.Teardown(ctx, id); err != nil {
			return fmt.Errorf("container %s: %w", shortID(id), err)
		}
	}
	if err := e.cfg.Store.Containers().Delete(ctx, id); err != nil {
		return err
	}
	if c.SnapshotKey != "" {
		sn, err := e.snapshotter(c.Snapshotter)
		if err != nil {
			return err
		}
		if err := sn.Remove(ctx, c.SnapshotKey); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: remove snapshot: %w", shortID(id), err)
		}
	}
	if o.Volumes {
		if err := e.removeAnonymousVolumes(ctx, c); err != nil {
			return err
		}
	}
	if e.cfg.LogRoot != "" {
		ns, err := namespaces.NamespaceRequired(ctx)
		if err != nil {
			return err
		}
		dir, err := logs.Dir(e.cfg.LogRoot, ns, id)
		if err != nil {
			return err
		}
		if err := logs.Remove(dir); err != nil {
			return fmt.Errorf("container %s: %w", shortID(id), err)
		}
	}
	return nil
}

// removeAnonymousVolumes removes the anonymous volumes the spec of c, whose
// record is gone, binds.
func (e *Engine) removeAnonymousVolumes(ctx context.Context, c containers.Container) error {
	if e.cfg.Volumes == nil || c.Spec == nil {
		return nil
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec.GetValue(), &spec); err != nil {
		// Not a runtime spec (another client's container): no volumes
		// of ours in it.
		return nil
	}
	removed, err := e.cfg.Volumes.RemoveAnonymous(ctx, spec.Mounts)
	if err != nil {
		return fmt.Errorf("container %s: remove its anonymous volumes: %w", shortID(c.ID), err)
	}
	if len(removed) > 0 {
		e.log.Debug("removed anonymous volumes", "container", c.ID, "volumes", removed)
	}
	return nil
}

// Prune removes every container that does not run and returns their IDs.
func (e *Engine) Prune(ctx context.Context) ([]string, error) {
	all, err := e.List(ctx, true)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, s := range all {
		if s.State == StateRunning || s.State == StatePaused {
			continue
		}
		if err := e.Remove(ctx, s.ID, RemoveOptions{}); err != nil {
			return removed, err
		}
		removed = append(removed, s.ID)
	}
	return removed, nil
}

// CloseStdin closes the stdin of the container's process: its EOF.
func (e *Engine) CloseStdin(ctx context.Context, id string) error {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return err
	}
	if _, err := e.cfg.Tasks.CloseIO(gctx, &tasksapi.CloseIORequest{ContainerID: id, Stdin: true}); err != nil {
		return fmt.Errorf("container %s: close stdin: %w", shortID(id), errgrpc.ToNative(err))
	}
	return nil
}

// Logger is the engine's logger.
func (e *Engine) Logger() *slog.Logger { return e.log }

// Tasks is the tasks client the engine uses (exec).
func (e *Engine) Tasks() tasksapi.TasksClient { return e.cfg.Tasks }

// Resize sets the size of the container's terminal.
func (e *Engine) Resize(ctx context.Context, id string, width, height uint32) error {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return err
	}
	if _, err := e.cfg.Tasks.ResizePty(gctx, &tasksapi.ResizePtyRequest{ContainerID: id, Width: width, Height: height}); err != nil {
		return fmt.Errorf("container %s: resize terminal: %w", shortID(id), errgrpc.ToNative(err))
	}
	return nil
}

// Reap finishes the containers started with --rm in the background whose
// task has exited: their task, network, record and snapshot go. Nothing
// watches a detached container for the CLI, so every container command
// reaps first. It returns the IDs removed.
func (e *Engine) Reap(ctx context.Context) ([]string, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := e.cfg.Tasks.List(gctx, &tasksapi.ListTasksRequest{Filter: "status==STOPPED"})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	var removed []string
	for _, p := range resp.Tasks {
		c, err := e.cfg.Store.Containers().Get(ctx, p.ContainerID)
		if err != nil || c.Labels[labels.ContainerAutoRemove] != "true" {
			continue
		}
		if err := e.Remove(ctx, c.ID, RemoveOptions{Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return removed, err
		}
		removed = append(removed, c.ID)
	}
	return removed, nil
}
