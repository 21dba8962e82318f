package engine

import (
	"errors"
	"testing"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestDecodeMetrics: cgroup v1 and v2 metrics, as the runc shim sends
// them, give the same Stats; another type is ErrNotImplemented.
func TestDecodeMetrics(t *testing.T) {
	v1 := &cg1.Metrics{
		CPU:    &cg1.CPUStat{Usage: &cg1.CPUUsage{Total: 1500000}},
		Memory: &cg1.MemoryStat{Usage: &cg1.MemoryEntry{Usage: 5 << 20, Limit: 64 << 20}, TotalInactiveFile: 1 << 20},
		Pids:   &cg1.PidsStat{Current: 2, Limit: 42},
	}
	v2 := &cg2.Metrics{
		CPU:    &cg2.CPUStat{UsageUsec: 1500},
		Memory: &cg2.MemoryStat{Usage: 5 << 20, UsageLimit: 64 << 20, InactiveFile: 1 << 20},
		Pids:   &cg2.PidsStat{Current: 2, Limit: 42},
	}
	want := Stats{CPU: 1500 * time.Microsecond, MemoryUsage: 4 << 20, MemoryLimit: 64 << 20, Pids: 2, PidsLimit: 42}
	for _, tc := range []struct {
		name string
		m    proto.Message
	}{{"cgroup v1", v1}, {"cgroup v2", v2}} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := anypb.New(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := decodeMetrics(a); err != nil || got != want {
				t.Errorf("decodeMetrics(%s) = %+v, %v; want %+v", a.TypeUrl, got, err, want)
			}
		})
	}
	if _, err := decodeMetrics(&anypb.Any{TypeUrl: "example.com/Other"}); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("decodeMetrics(another type) = %v, want ErrNotImplemented", err)
	}
	if _, err := decodeMetrics(&anypb.Any{TypeUrl: "type.googleapis.com/io.containerd.cgroups.v1.Metrics", Value: []byte{0xff}}); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("decodeMetrics(bad bytes) = %v, want ErrDataLoss", err)
	}
}
