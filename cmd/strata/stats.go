package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/engine"
)

// statsInterval is the time between two samples: CPU % is the CPU time a
// container used over it.
const statsInterval = time.Second

// statsRow is one container's line of strata stats (and its JSON).
type statsRow struct {
	ID          string  `json:"ID"`
	Name        string  `json:"Name"`
	CPUPercent  float64 `json:"CPUPerc"`
	MemoryUsage uint64  `json:"MemUsage"`
	MemoryLimit uint64  `json:"MemLimit"`
	MemPercent  float64 `json:"MemPerc"`
	Pids        uint64  `json:"PIDs"`
}

func newStatsCommand(a *app) *cobra.Command {
	var noStream, noTrunc bool
	cmd := &cobra.Command{
		Use:   "stats [--no-stream] [CONTAINER...]",
		Short: "Show the CPU, memory and process use of running containers, as docker stats",
		Long: `Shows, for the named containers or every running one, the CPU used over
the last second (100% is one CPU), memory in use against its limit (the
host's memory when the container has none) and the number of processes,
from the cgroup metrics of the tasks service. Without --no-stream, a new
table every second until interrupted.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				type target struct{ id, name string }
				var targets []target
				if len(args) == 0 {
					list, err := e.List(ctx, false)
					if err != nil {
						return err
					}
					for _, c := range list {
						targets = append(targets, target{c.ID, c.Name})
					}
				}
				for _, ref := range args {
					c, err := e.Resolve(ctx, ref)
					if err != nil {
						return err
					}
					sum, err := e.Inspect(ctx, c.ID)
					if err != nil {
						return err
					}
					if sum.State != engine.StateRunning {
						return fmt.Errorf("container %s is %s: no stats: %w", ref, sum.State, errdefs.ErrFailedPrecondition)
					}
					targets = append(targets, target{c.ID, sum.Name})
				}
				sample := func() (map[string]engine.Stats, error) {
					out := map[string]engine.Stats{}
					for _, t := range targets {
						st, err := e.Stats(ctx, t.id)
						if err != nil {
							return nil, err
						}
						out[t.id] = st
					}
					return out, nil
				}
				prev, err := sample()
				if err != nil {
					return err
				}
				host := hostMemory()
				tty := isTerminal(os.Stdout)
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(statsInterval):
					}
					cur, err := sample()
					if err != nil {
						return err
					}
					var rows []statsRow
					for _, t := range targets {
						p, c := prev[t.id], cur[t.id]
						r := statsRow{ID: t.id, Name: t.name, MemoryUsage: c.MemoryUsage, MemoryLimit: c.MemoryLimit, Pids: c.Pids}
						if wall := c.Time.Sub(p.Time); wall > 0 && c.CPU >= p.CPU {
							r.CPUPercent = float64(c.CPU-p.CPU) / float64(wall) * 100
						}
						if host > 0 && (r.MemoryLimit == 0 || r.MemoryLimit > host) {
							r.MemoryLimit = host
						}
						if r.MemoryLimit > 0 {
							r.MemPercent = float64(r.MemoryUsage) / float64(r.MemoryLimit) * 100
						}
						rows = append(rows, r)
					}
					if err := printStats(cmd, a, rows, noTrunc, tty && !noStream); err != nil {
						return err
					}
					if noStream {
						return nil
					}
					prev = cur
				}
			})
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one table and exit")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	return cmd
}

func printStats(cmd *cobra.Command, a *app, rows []statsRow, noTrunc, clear bool) error {
	out := cmd.OutOrStdout()
	if a.output == "json" {
		if rows == nil {
			rows = []statsRow{}
		}
		return printJSON(out, rows)
	}
	if clear {
		fmt.Fprint(out, "\033[2J\033[H")
	}
	t := newTable(out, "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS")
	for _, r := range rows {
		t.row(trunc(r.ID, noTrunc), r.Name, fmt.Sprintf("%.2f%%", r.CPUPercent),
			humanSize(int64(r.MemoryUsage))+" / "+humanSize(int64(r.MemoryLimit)), fmt.Sprintf("%.2f%%", r.MemPercent), fmt.Sprint(r.Pids))
	}
	return t.flush()
}

// hostMemory is the host's RAM in bytes (0 when unknown): the limit
// shown for a container without one, as docker shows.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}
