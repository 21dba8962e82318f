package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Stats is one sample of a running container's resource use.
type Stats struct {
	ID   string
	Time time.Time
	// CPU is the CPU time used since the container started.
	CPU time.Duration
	// MemoryUsage is in bytes, without the inactive page cache (as
	// docker's); MemoryLimit is the cgroup's limit (a huge number when
	// there is none).
	MemoryUsage, MemoryLimit uint64
	// Pids is how many processes (and threads) the container has; PidsLimit
	// its limit (0: none).
	Pids, PidsLimit uint64
}

// Stats returns a sample of the container's cgroup metrics, from the
// tasks service (the shim reads cgroup v1 or v2). A container with no
// running task is errdefs.ErrFailedPrecondition; metrics of a type
// neither v1 nor v2 are errdefs.ErrNotImplemented.
func (e *Engine) Stats(ctx context.Context, id string) (Stats, error) {
	gctx, err := grpcCtx(ctx)
	if err != nil {
		return Stats{}, err
	}
	resp, err := e.cfg.Tasks.Metrics(gctx, &tasksapi.MetricsRequest{Filters: []string{"id==" + id}})
	if err != nil {
		return Stats{}, fmt.Errorf("container %s: metrics: %w", shortID(id), errgrpc.ToNative(err))
	}
	for _, m := range resp.Metrics {
		if m.ID != id {
			continue
		}
		st, err := decodeMetrics(m.Data)
		if err != nil {
			return Stats{}, fmt.Errorf("container %s: metrics: %w", shortID(id), err)
		}
		st.ID, st.Time = id, m.Timestamp.AsTime()
		return st, nil
	}
	return Stats{}, fmt.Errorf("container %s is not running: %w", shortID(id), errdefs.ErrFailedPrecondition)
}

// decodeMetrics reads containerd's cgroups metrics by the Any's type:
// io.containerd.cgroups.v1.Metrics or .v2.Metrics.
func decodeMetrics(a *anypb.Any) (Stats, error) {
	if a == nil {
		return Stats{}, fmt.Errorf("no data: %w", errdefs.ErrNotImplemented)
	}
	name := a.TypeUrl[strings.LastIndex(a.TypeUrl, "/")+1:]
	var st Stats
	switch name {
	case string(proto.MessageName(&cg1.Metrics{})):
		var m cg1.Metrics
		if err := proto.Unmarshal(a.Value, &m); err != nil {
			return st, fmt.Errorf("%s: %w: %w", name, err, errdefs.ErrDataLoss)
		}
		st.CPU = time.Duration(m.GetCPU().GetUsage().GetTotal())
		mem := m.GetMemory()
		st.MemoryUsage = subFloor(mem.GetUsage().GetUsage(), mem.GetTotalInactiveFile())
		st.MemoryLimit = mem.GetUsage().GetLimit()
		st.Pids, st.PidsLimit = m.GetPids().GetCurrent(), m.GetPids().GetLimit()
	case string(proto.MessageName(&cg2.Metrics{})):
		var m cg2.Metrics
		if err := proto.Unmarshal(a.Value, &m); err != nil {
			return st, fmt.Errorf("%s: %w: %w", name, err, errdefs.ErrDataLoss)
		}
		st.CPU = time.Duration(m.GetCPU().GetUsageUsec()) * time.Microsecond
		mem := m.GetMemory()
		st.MemoryUsage = subFloor(mem.GetUsage(), mem.GetInactiveFile())
		st.MemoryLimit = mem.GetUsageLimit()
		st.Pids, st.PidsLimit = m.GetPids().GetCurrent(), m.GetPids().GetLimit()
	default:
		return st, fmt.Errorf("type %q: want cgroups v1 or v2 metrics: %w", a.TypeUrl, errdefs.ErrNotImplemented)
	}
	return st, nil
}

func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
