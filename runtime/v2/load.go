package v2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	apievents "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/namespaces"
)

// Load finds the tasks an earlier daemon left in the state directory and
// reconnects to their shims, which kept running. A task that ended while
// no daemon listened has its exit published now (once); a bundle whose
// shim is gone is cleaned up with the shim's delete command (its exit and
// delete published) and removed, as is a bundle whose create never
// finished. Errors about one bundle are logged: the others still load.
func (m *Manager) Load(ctx context.Context) error {
	nss, err := os.ReadDir(m.cfg.State)
	if err != nil {
		return fmt.Errorf("runtime: load tasks: %w", err)
	}
	for _, nsEnt := range nss {
		if !nsEnt.IsDir() {
			continue
		}
		ns := nsEnt.Name()
		ids, err := os.ReadDir(filepath.Join(m.cfg.State, ns))
		if err != nil {
			m.log.Warn("load tasks", "namespace", ns, "error", err)
			continue
		}
		for _, idEnt := range ids {
			if !idEnt.IsDir() {
				continue
			}
			nctx := namespaces.WithNamespace(ctx, ns)
			if err := m.load(nctx, ns, idEnt.Name()); err != nil {
				m.log.Warn("load task", "namespace", ns, "id", idEnt.Name(), "error", err)
			}
		}
		os.Remove(filepath.Join(m.cfg.State, ns)) // if now empty
	}
	return nil
}

func (m *Manager) load(ctx context.Context, ns, id string) error {
	dir := m.bundleDir(ns, id)
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		// The daemon died before it started the shim.
		m.log.Info("removing the bundle of a task never created", "namespace", ns, "id", id)
		return removeBundle(dir)
	}
	if err != nil {
		return err
	}
	// Bundles of strata before the bundle was closed are 0711 (newBundle).
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("task %s: close its bundle: %w", id, err)
	}
	t := &Task{ID: id, Namespace: ns, Bundle: dir, Runtime: rec.Runtime, Binary: rec.Binary, deleteEvent: make(chan struct{})}
	if rec.Bootstrap.Address == "" {
		// Killed between the shim's start and its answer: the shim's
		// delete command cleans up whatever it made.
		if _, err := m.deleteShim(ctx, rec.Binary, ns, id, dir); err != nil {
			m.log.Debug("shim cleanup of an unfinished create", "namespace", ns, "id", id, "error", err)
		}
		return removeBundle(dir)
	}
	if t.log, err = m.copyShimLog(dir, ns, id); err != nil {
		return err
	}
	if err := m.connect(ctx, t, rec.Bootstrap); err != nil {
		m.log.Info("shim gone", "namespace", ns, "id", id, "error", err)
		_, err := m.cleanupDead(ctx, t)
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	st, err := t.api.State(cctx, &taskapi.StateRequest{ID: id})
	cancel()
	if err != nil {
		err = Err(err)
		if errors.Is(err, errdefs.ErrNotFound) {
			// A shim whose create failed before the daemon heard of it.
			t.mu.Lock()
			t.deleting = true
			t.mu.Unlock()
			t.api.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id})
		}
		_, derr := m.cleanupDead(ctx, t)
		return errors.Join(fmt.Errorf("task %s: state: %w", id, err), derr)
	}
	t.Pid = st.GetPid()
	m.mu.Lock()
	m.tasks[taskKey{ns, id}] = t
	m.mu.Unlock()
	m.log.Info("reconnected to a task", "namespace", ns, "id", id, "status", st.GetStatus().String(), "pid", st.GetPid())
	if st.GetStatus() == tasktypes.Status_STOPPED && m.markExit(ns, id) {
		m.publish(ctx, ns, TopicTaskExit, &apievents.TaskExit{ContainerID: id, ID: id, Pid: st.GetPid(),
			ExitStatus: st.GetExitStatus(), ExitedAt: st.GetExitedAt()})
	}
	return nil
}
