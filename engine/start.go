package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/network"
)

// IO names the task's stdio: FIFO paths or shim log URIs (file://,
// binary://). With none of them and no terminal, the output goes to the
// container's logger (CreateOptions.LogURI), or /dev/null without one.
type IO struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// ErrCommandNotFound wraps the failure to start a command the image does
// not have (docker's exit status 127); ErrCommandNotExecutable one that
// cannot be run (126).
var (
	ErrCommandNotFound      = errors.New("engine: command not found")
	ErrCommandNotExecutable = errors.New("engine: command cannot be executed")
)

// Start starts a created or stopped container: its network first, then a
// new task (an old, stopped one is deleted). A running container is
// errdefs.ErrFailedPrecondition. On error the task and the network are
// undone.
func (e *Engine) Start(ctx context.Context, id string, stdio IO) (retErr error) {
	gctx, c, p, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if p != nil {
		if p.Status != tasktypes.Status_STOPPED {
			return fmt.Errorf("container %s is %s: %w", shortID(id), strings.ToLower(p.Status.String()), errdefs.ErrFailedPrecondition)
		}
		if err := e.finish(ctx, c); err != nil {
			return err
		}
		if c, err = e.cfg.Store.Containers().Get(ctx, id); err != nil {
			return err
		}
	}
	var spec specs.Spec
	if c.Spec == nil || json.Unmarshal(c.Spec.Value, &spec) != nil || spec.Linux == nil || spec.Root == nil {
		return fmt.Errorf("container %s: its spec is not a Linux runtime spec: %w", shortID(id), errdefs.ErrFailedPrecondition)
	}
	undo := func(f func(context.Context) error) {
		if retErr != nil {
			if err := f(context.WithoutCancel(ctx)); err != nil {
				e.log.Warn("undo a failed start", "container", id, "error", err)
			}
		}
	}
	held := false // whether this process holds a network endpoint for it
	if nw := c.Labels[labels.ContainerNetwork]; nw != NetworkHost && nw != NetworkNone {
		if e.cfg.Network == nil {
			return fmt.Errorf("container %s: network %q: no container networking here: %w", shortID(id), nw, errdefs.ErrUnavailable)
		}
		req := network.Request{Network: nw, Name: c.Labels[labels.ContainerName], Hostname: spec.Hostname}
		if nw == NetworkBridge {
			req.Network, req.Name = "", ""
		}
		if pb := c.Labels[labels.ContainerPorts]; pb != "" {
			if err := json.Unmarshal([]byte(pb), &req.Ports); err != nil {
				return fmt.Errorf("container %s: label %s: %w", shortID(id), labels.ContainerPorts, err)
			}
		}
		ep, err := e.cfg.Network.Setup(ctx, id, req)
		if err != nil {
			return fmt.Errorf("container %s: %w", shortID(id), err)
		}
		defer undo(func(ctx context.Context) error { return e.cfg.Network.Teardown(ctx, id) })
		held = true
		joinNetwork(&spec, ep)
	}
	sb, err := json.Marshal(&spec)
	if err != nil {
		return err
	}
	c.Spec = &anypb.Any{TypeUrl: SpecTypeURL, Value: sb}
	c.Labels[labels.ContainerStartedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	delete(c.Labels, labels.ContainerFinishedAt)
	delete(c.Labels, labels.ContainerExitCode)
	if _, err := e.cfg.Store.Containers().Update(ctx, c, "spec", "labels"); err != nil {
		return err
	}

	if stdio == (IO{}) {
		stdio.Stdout = c.Labels[labels.ContainerLogURI]
		stdio.Stderr = stdio.Stdout
		// A process made with a terminal (run -dit, or start after run
		// -it) needs one even with no one attached: runc refuses to
		// detach without a console, and the shim copies it to the log.
		stdio.Terminal = spec.Process != nil && spec.Process.Terminal
	}
	sn, err := e.snapshotter(c.Snapshotter)
	if err != nil {
		return err
	}
	mounts, err := sn.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return fmt.Errorf("container %s: root filesystem: %w", shortID(id), err)
	}
	var rootfs []*types.Mount
	for _, m := range mounts {
		rootfs = append(rootfs, &types.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	req := &tasksapi.CreateTaskRequest{ContainerID: id, Rootfs: rootfs, Terminal: stdio.Terminal,
		Stdin: stdio.Stdin, Stdout: orNull(stdio.Stdout), Stderr: orNull(stdio.Stderr)}
	if stdio.Terminal {
		req.Stderr = ""
		// The shim copies a terminal to a path it opens or to a binary://
		// logger; it has no file:// there.
		if stdio.Stdout == "" {
			req.Stdout = os.DevNull
		}
	}
	created, err := e.cfg.Tasks.Create(gctx, req)
	if err != nil {
		return commandError(fmt.Errorf("container %s: create task: %w", shortID(id), errgrpc.ToNative(err)))
	}
	defer undo(func(ctx context.Context) error {
		gctx, _ := grpcCtx(ctx)
		e.cfg.Tasks.Kill(gctx, &tasksapi.KillRequest{ContainerID: id, Signal: 9, All: true})
		_, err := e.cfg.Tasks.Delete(gctx, &tasksapi.DeleteTaskRequest{ContainerID: id})
		return errgrpc.ToNative(err)
	})
	if held {
		// This process held the endpoint since Setup, so that a stratad
		// starting meanwhile left it alone; from now on the task does,
		// however long this process lives.
		if err := e.cfg.Network.Hold(ctx, id, int(created.GetPid())); err != nil {
			return fmt.Errorf("container %s: %w", shortID(id), err)
		}
	}
	if _, err := e.cfg.Tasks.Start(gctx, &tasksapi.StartRequest{ContainerID: id}); err != nil {
		return commandError(fmt.Errorf("container %s: start task: %w", shortID(id), errgrpc.ToNative(err)))
	}
	return nil
}

func orNull(s string) string {
	if s == "" {
		return "file:///dev/null"
	}
	return s
}

// commandError classes runc's refusal to run the command as docker does:
// not found (127) or not executable (126).
func commandError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory") && strings.Contains(msg, "exec"):
		return fmt.Errorf("%w: %w", err, ErrCommandNotFound)
	case strings.Contains(msg, "permission denied") && strings.Contains(msg, "exec"):
		return fmt.Errorf("%w: %w", err, ErrCommandNotExecutable)
	}
	return err
}

// joinNetwork puts the container in the endpoint's network namespace,
// with its /etc/hosts, resolv.conf and hostname.
func joinNetwork(spec *specs.Spec, ep *network.Endpoint) {
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = ep.NetNS
		}
	}
	add := ep.Mounts(spec.Root.Readonly)
	kept := spec.Mounts[:0]
	for _, m := range spec.Mounts {
		replaced := false
		for _, a := range add {
			replaced = replaced || a.Destination == m.Destination
		}
		if !replaced {
			kept = append(kept, m)
		}
	}
	spec.Mounts = append(kept, add...)
}

// task returns the container's task, or nil when it has none.
// load reads container id and its task's init process (nil when it has
// no task), with the context the tasks service is called with.
func (e *Engine) load(ctx context.Context, id string) (context.Context, containers.Container, *tasktypes.Process, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return nil, containers.Container{}, nil, err
	}
	c, err := e.cfg.Store.Containers().Get(ctx, id)
	if err != nil {
		return nil, containers.Container{}, nil, err
	}
	p, err := e.task(gctx, id)
	if err != nil {
		return nil, containers.Container{}, nil, err
	}
	return gctx, c, p, nil
}

func (e *Engine) task(gctx context.Context, id string) (*tasktypes.Process, error) {
	resp, err := e.cfg.Tasks.Get(gctx, &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		err = errgrpc.ToNative(err)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("container %s: task: %w", shortID(id), err)
	}
	return resp.Process, nil
}

// finish deletes the stopped task of c, keeps its exit status and end
// time in c's labels, and tears down its network; with --rm it removes c.
func (e *Engine) finish(ctx context.Context, c containers.Container) error {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return err
	}
	resp, err := e.cfg.Tasks.Delete(gctx, &tasksapi.DeleteTaskRequest{ContainerID: c.ID})
	if err != nil {
		if err = errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("container %s: delete task: %w", shortID(c.ID), err)
		}
	}
	if e.cfg.Network != nil {
		if err := e.cfg.Network.Teardown(ctx, c.ID); err != nil {
			return fmt.Errorf("container %s: %w", shortID(c.ID), err)
		}
	}
	if resp != nil {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		at := time.Now()
		if resp.ExitedAt != nil {
			at = resp.ExitedAt.AsTime()
		}
		c.Labels[labels.ContainerExitCode] = fmt.Sprint(resp.ExitStatus)
		c.Labels[labels.ContainerFinishedAt] = at.UTC().Format(time.RFC3339Nano)
		if _, err := e.cfg.Store.Containers().Update(ctx, c, "labels"); err != nil {
			return err
		}
	}
	return nil
}
