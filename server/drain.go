package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/containerd/errdefs"
)

// What Stop drains: the jobs of every front door (the jobs, transfer and
// CRI image services) start here and hold Stop until they release.

// idleFree is how long the daemon stays without jobs before it returns
// their memory to the OS.
const idleFree = 5 * time.Second

// startJob returns the context a job runs on: the call's values (its
// namespace, its lease) without its cancellation, cancelled by the cancel
// returned and when Stop gives up waiting. release ends the job's hold on
// Stop.
func (s *Server) startJob(call context.Context, long bool) (context.Context, context.CancelFunc, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, nil, nil, fmt.Errorf("daemon is shutting down: %w", errdefs.ErrUnavailable)
	}
	s.jobs.Add(1)
	s.running++
	ctx, cancel := context.WithCancel(context.WithoutCancel(call))
	stop := context.AfterFunc(s.jobsCtx, cancel)
	release := func() {
		stop()
		s.mu.Lock()
		s.running--
		idle := s.running == 0
		s.mu.Unlock()
		if idle && long {
			// A pull's buffers (decompression windows, read-ahead,
			// batches of small files) are garbage now; once the
			// daemon has stayed idle a while, give their memory back
			// rather than sit on it until the next job (after a few
			// pulls an idle daemon otherwise keeps ~100 MiB resident).
			// Not at once: a full collection in the middle of the
			// next job of a script would slow it down.
			// The timer finds out whether the daemon is still idle;
			// a later long job restarts it.
			s.mu.Lock()
			if s.idleTimer != nil {
				s.idleTimer.Stop()
			}
			s.idleTimer = time.AfterFunc(idleFree, func() {
				s.mu.Lock()
				idle := s.running == 0
				s.mu.Unlock()
				if idle {
					debug.FreeOSMemory()
				}
			})
			s.mu.Unlock()
		}
		s.jobs.Done()
	}
	return ctx, cancel, release, nil
}

// startLongJob starts a job that moves data (a transfer, a CRI pull).
func (s *Server) startLongJob(call context.Context) (context.Context, context.CancelFunc, func(), error) {
	return s.startJob(call, true)
}
