package server

import (
	"context"
	"fmt"
	"sync"

	apievents "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/namespaces"
	v2 "github.com/strata-oci/strata/runtime/v2"
)

// Networks is what the daemon needs of the containers' networks
// (network.Manager): tear down the endpoint of a container (id in the
// namespace of ctx) whose init process pid exited, and at start those of
// containers that no longer run.
type Networks interface {
	TeardownExited(ctx context.Context, id string, pid int) error
	Cleanup(ctx context.Context, live func(namespace, id string) bool) ([]string, error)
}

// networkWatch tears down the network of each container whose task exits
// (the init process's /tasks/exit on the exchange), so that a container
// that ends by itself, with no strata command waiting on it, holds no
// veth, namespace, address or port; at start it cleans up what the
// containers whose tasks died while no daemon ran left (Cleanup with live
// = "has a running task").
type networkWatch struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startNetworkWatch subscribes before the tasks are loaded, so that the
// exits loading finds are torn down too; cleanupNetworks runs after.
func (s *Server) startNetworkWatch() error {
	nw := s.cfg.Network
	if nw == nil || s.cfg.Runtime.State == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := s.events.Subscribe(ctx, fmt.Sprintf("topic==%q", v2.TopicTaskExit))
	if err != nil {
		cancel()
		return err
	}
	w := &networkWatch{cancel: cancel}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for env := range sub.C {
			m, err := events.Unpack(env.GetEvent())
			if err != nil {
				s.Log.Warn("network teardown: undecodable task exit", "error", err)
				continue
			}
			ev, ok := m.(*apievents.TaskExit)
			// An exec's exit is not the container's.
			if !ok || ev.GetID() != "" && ev.GetID() != ev.GetContainerID() {
				continue
			}
			// IDs are unique in a namespace only: the same ID in another
			// one is another container, with its own network.
			if err := nw.TeardownExited(namespaces.WithNamespace(ctx, env.GetNamespace()), ev.GetContainerID(), int(ev.GetPid())); err != nil {
				s.Log.Warn("network teardown of an exited container", "container", ev.GetContainerID(), "namespace", env.GetNamespace(), "error", err)
			}
		}
		if err := sub.Err(); err != nil {
			// Fell behind: what was missed is left to the next
			// start's cleanup, or to strata stop and rm.
			s.Log.Warn("network teardown: event subscription ended", "error", err)
		}
	}()
	s.netWatch = w
	return nil
}

// cleanupNetworks tears down the endpoints of containers without a
// running task, once the tasks are loaded (the manager keeps those whose
// holder process runs: a container a CLI is setting up, whose task this
// daemon has not seen).
func (s *Server) cleanupNetworks(ctx context.Context) error {
	if s.netWatch == nil || s.tasks == nil {
		return nil
	}
	running, err := s.runningTasks(ctx)
	if err != nil {
		return fmt.Errorf("network cleanup: %w", err)
	}
	removed, err := s.cfg.Network.Cleanup(ctx, func(ns, id string) bool {
		if ns == "" { // a record of the old layout: its namespace is unknown
			return running.anywhere[id]
		}
		return running.in[taskRef{ns, id}]
	})
	if len(removed) > 0 {
		s.Log.Info("network cleanup: tore down the networks of containers that no longer run", "containers", removed)
	}
	if err != nil {
		// Not fatal: the daemon serves; the next start tries again.
		s.Log.Warn("network cleanup", "error", err)
	}
	return nil
}

// taskRef names a container: its namespace and ID.
type taskRef struct{ namespace, id string }

// runningSet is the containers with a running task, by namespace and ID,
// and by ID alone in any namespace.
type runningSet struct {
	in       map[taskRef]bool
	anywhere map[string]bool
}

// runningTasks returns the containers, in every namespace, whose task is
// created, running or paused (a stopped task holds no network worth
// keeping).
func (s *Server) runningTasks(ctx context.Context) (runningSet, error) {
	running := runningSet{in: map[taskRef]bool{}, anywhere: map[string]bool{}}
	nss, err := s.Store.DB.Namespaces().List(ctx)
	if err != nil {
		return running, err
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ts, err := s.tasks.manager.List(nctx)
		if err != nil {
			return running, err
		}
		for _, t := range ts {
			if t.Dead() {
				continue
			}
			st, err := t.API().State(nctx, &taskapi.StateRequest{ID: t.ID})
			if err != nil {
				// Unknown: keep its network rather than cut a live one.
				s.Log.Warn("network cleanup: task state", "container", t.ID, "namespace", ns, "error", err)
			} else if st.GetStatus() == tasktypes.Status_STOPPED {
				continue
			}
			running.in[taskRef{ns, t.ID}] = true
			running.anywhere[t.ID] = true
		}
	}
	return running, nil
}

// closeNetworkWatch stops the watch and waits for it.
func (s *Server) closeNetworkWatch() {
	if s.netWatch != nil {
		s.netWatch.cancel()
		s.netWatch.done.Wait()
	}
}
