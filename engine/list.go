package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/network"
)

// States of a container, as docker names them.
const (
	StateCreated = "created"
	StateRunning = "running"
	StatePaused  = "paused"
	StateExited  = "exited"
)

// Summary is one container as ps and inspect show it.
type Summary struct {
	ID      string    `json:"Id"`
	Name    string    `json:"Name"`
	Image   string    `json:"Image"`
	Command []string  `json:"Command"`
	Created time.Time `json:"Created"`
	State   string    `json:"State"`
	Pid     uint32    `json:"Pid,omitempty"`
	// ExitCode is the status of the last task, when it has exited.
	ExitCode   int                   `json:"ExitCode"`
	StartedAt  time.Time             `json:"StartedAt,omitzero"`
	FinishedAt time.Time             `json:"FinishedAt,omitzero"`
	Network    string                `json:"Network"`
	Ports      []network.PortMapping `json:"Ports,omitempty"`
	Labels     map[string]string     `json:"Labels,omitempty"`
	// Spec is the runtime spec (inspect).
	Spec *specs.Spec `json:"Spec,omitempty"`
}

// Status is docker's STATUS column: "Up 3 seconds", "Exited (3) 2
// seconds ago", "Created".
func (s Summary) Status(now time.Time) string {
	switch s.State {
	case StateRunning:
		return "Up " + humanDuration(now.Sub(s.StartedAt))
	case StatePaused:
		return "Up " + humanDuration(now.Sub(s.StartedAt)) + " (Paused)"
	case StateExited:
		if s.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", s.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	}
	return "Created"
}

// humanDuration is docker's (go-units HumanDuration) wording.
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	default:
		return fmt.Sprintf("%d weeks", h/24/7)
	}
}

// Resolve finds a container by full ID, name or unique ID prefix, as
// docker does: an unknown one is errdefs.ErrNotFound, a prefix of several
// IDs errdefs.ErrInvalidArgument naming them.
func (e *Engine) Resolve(ctx context.Context, ref string) (containers.Container, error) {
	if ref == "" {
		return containers.Container{}, fmt.Errorf("container name or ID is empty: %w", errdefs.ErrInvalidArgument)
	}
	all, err := e.cfg.Store.Containers().List(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	var prefixed []containers.Container
	for _, c := range all {
		if c.ID == ref {
			return c, nil
		}
	}
	for _, c := range all {
		if c.Labels[labels.ContainerName] == ref {
			return c, nil
		}
		if strings.HasPrefix(c.ID, ref) {
			prefixed = append(prefixed, c)
		}
	}
	switch len(prefixed) {
	case 0:
		return containers.Container{}, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	case 1:
		return prefixed[0], nil
	}
	var ids []string
	for _, c := range prefixed {
		ids = append(ids, shortID(c.ID))
	}
	return containers.Container{}, fmt.Errorf("container ID prefix %q is ambiguous: it starts %s: %w", ref, strings.Join(ids, ", "), errdefs.ErrInvalidArgument)
}

// List returns the containers, the running ones only unless all, newest
// first.
func (e *Engine) List(ctx context.Context, all bool) ([]Summary, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := e.cfg.Store.Containers().List(ctx)
	if err != nil {
		return nil, err
	}
	tasks, err := e.cfg.Tasks.List(gctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	byID := map[string]*tasktypes.Process{}
	for _, p := range tasks.Tasks {
		byID[p.ContainerID] = p
	}
	var out []Summary
	for _, c := range cs {
		s := summarize(c, byID[c.ID])
		if all || s.State == StateRunning || s.State == StatePaused {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Inspect returns one container's summary with its spec.
func (e *Engine) Inspect(ctx context.Context, id string) (Summary, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return Summary{}, err
	}
	c, err := e.cfg.Store.Containers().Get(ctx, id)
	if err != nil {
		return Summary{}, err
	}
	p, err := e.task(gctx, id)
	if err != nil {
		return Summary{}, err
	}
	s := summarize(c, p)
	var spec specs.Spec
	if c.Spec != nil && json.Unmarshal(c.Spec.Value, &spec) == nil {
		s.Spec = &spec
	}
	return s, nil
}

func summarize(c containers.Container, p *tasktypes.Process) Summary {
	s := Summary{ID: c.ID, Name: c.Labels[labels.ContainerName], Image: c.Image, Created: c.CreatedAt,
		Network: c.Labels[labels.ContainerNetwork], Labels: c.Labels, State: StateCreated}
	var spec specs.Spec
	if c.Spec != nil && json.Unmarshal(c.Spec.Value, &spec) == nil && spec.Process != nil {
		s.Command = spec.Process.Args
	}
	if pb := c.Labels[labels.ContainerPorts]; pb != "" {
		json.Unmarshal([]byte(pb), &s.Ports)
	}
	if t, err := time.Parse(time.RFC3339Nano, c.Labels[labels.ContainerStartedAt]); err == nil {
		s.StartedAt = t
	}
	if t, err := time.Parse(time.RFC3339Nano, c.Labels[labels.ContainerFinishedAt]); err == nil {
		s.FinishedAt = t
	}
	if code, err := strconv.Atoi(c.Labels[labels.ContainerExitCode]); err == nil {
		s.ExitCode, s.State = code, StateExited
	}
	switch {
	case p == nil:
		if s.State != StateExited && !s.StartedAt.IsZero() {
			// Started, and its task is gone without a word (a reboot).
			s.State, s.ExitCode = StateExited, 255
		}
	case p.Status == tasktypes.Status_RUNNING:
		s.State, s.Pid = StateRunning, p.Pid
	case p.Status == tasktypes.Status_PAUSED, p.Status == tasktypes.Status_PAUSING:
		s.State, s.Pid = StatePaused, p.Pid
	case p.Status == tasktypes.Status_STOPPED:
		s.State, s.ExitCode = StateExited, int(p.ExitStatus)
		if p.ExitedAt != nil {
			s.FinishedAt = p.ExitedAt.AsTime()
		}
	case p.Status == tasktypes.Status_CREATED:
		s.State = StateCreated
	}
	return s
}
