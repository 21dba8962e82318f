package server

import (
	"context"
	"path/filepath"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"

	v2 "github.com/strata-oci/strata/runtime/v2"
	"github.com/strata-oci/strata/services/tasks"
)

// RuntimeConfig configures the tasks service and its shims.
type RuntimeConfig struct {
	// State is where task bundles live (<daemon state>/runtime); empty
	// serves no tasks service.
	State string
	// Address is the daemon's socket path: shims get it, and publish
	// their events to Address + ".ttrpc".
	Address string
	// Debug starts shims with -debug.
	Debug bool
}

// taskRuntime is the tasks side of the server.
type taskRuntime struct {
	manager *v2.Manager
	service *tasks.Service
}

// registerTasks serves containerd.services.tasks.v1 over runtime v2
// shims, after reconnecting to the shims an earlier daemon left running.
func (s *Server) registerTasks() error {
	rc := s.cfg.Runtime
	if rc.State == "" {
		return nil
	}
	m, err := v2.New(v2.Config{State: rc.State, RuncRoot: filepath.Join(filepath.Dir(rc.State), "runc"), Address: rc.Address, Debug: rc.Debug, Version: s.cfg.Version, Logger: s.Log.With("component", "runtime"),
		Events: func(ctx context.Context, env *types.Envelope) error { return s.events.Forward(ctx, env) }})
	if err != nil {
		return err
	}
	if err := m.Load(context.Background()); err != nil {
		m.Close()
		return err
	}
	svc := tasks.New(tasks.Config{Containers: s.Store.DB.Containers(), Runtime: m, Authorize: s.cfg.Access.MayRun,
		Logger: s.Log.With("service", "tasks")})
	s.tasks = &taskRuntime{manager: m, service: svc}
	tasksapi.RegisterTasksServer(s.grpc, svc)
	s.AddPlugin(Plugin{Type: "io.containerd.runtime.v2", ID: "task", Requires: []string{"io.containerd.event.v1"}})
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "tasks", Requires: []string{"io.containerd.runtime.v2", "io.containerd.metadata.v1"}})
	return nil
}

// closeTasks disconnects from the shims, which keep their tasks running.
func (s *Server) closeTasks() {
	if s.tasks != nil {
		if err := s.tasks.manager.Close(); err != nil {
			s.Log.Warn("close the runtime", "error", err)
		}
	}
}

// CheckContainerDeletable refuses to let a container record go while it
// has a task (errdefs.ErrFailedPrecondition); without a tasks service
// every container is deletable. The containers service calls it.
func (s *Server) CheckContainerDeletable(ctx context.Context, id string) error {
	if s.tasks == nil {
		return nil
	}
	return s.tasks.service.CheckDeletable(ctx, id)
}
