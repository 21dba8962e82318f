package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	// minMemory is docker's lower bound for --memory: less and the
	// container's runtime cannot even start.
	minMemory = 6 << 20
	// cpuPeriod is the CFS period --cpus is a quota of (docker's 100 ms).
	cpuPeriod = 100000
)

// resources turns --memory, --cpus and --pids-limit into linux.resources.
// The spec's fields are the same for cgroup v1 and v2 (runc writes
// memory.limit_in_bytes or memory.max, cpu.cfs_quota_us or cpu.max,
// pids.max in either).
func resources(opts Options) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{Devices: deviceRules(opts.Privileged)}
	if opts.Memory < 0 || opts.Memory > 0 && opts.Memory < minMemory {
		return nil, fmt.Errorf("oci: memory limit %d bytes is below the minimum of %d (6 MiB): %w", opts.Memory, minMemory, errdefs.ErrInvalidArgument)
	}
	if opts.MemorySwap != 0 && opts.MemorySwap != -1 && (opts.Memory == 0 || opts.MemorySwap < opts.Memory) {
		return nil, fmt.Errorf("oci: memory+swap limit %d bytes: want -1, or at least the memory limit (%d bytes), which must be set: %w", opts.MemorySwap, opts.Memory, errdefs.ErrInvalidArgument)
	}
	if opts.Memory > 0 {
		limit := opts.Memory
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		switch {
		case opts.MemorySwap > 0:
			swap := opts.MemorySwap
			r.Memory.Swap = &swap
		case opts.MemorySwap == 0 && swapAccounted():
			swap := 2 * opts.Memory
			r.Memory.Swap = &swap
		}
	}
	if opts.CPUs < 0 || opts.CPUs > float64(runtime.NumCPU()) || opts.CPUs > 0 && opts.CPUs < 0.01 {
		return nil, fmt.Errorf("oci: --cpus %g: the range is 0.01 to %d (this host's CPUs): %w", opts.CPUs, runtime.NumCPU(), errdefs.ErrInvalidArgument)
	}
	if opts.CPUs > 0 {
		period := uint64(cpuPeriod)
		quota := int64(opts.CPUs * cpuPeriod)
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if opts.PidsLimit > 0 {
		limit := opts.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return r, nil
}

// deviceRules is the device cgroup: everything denied but what runc always
// allows (null, zero, full, random, urandom, tty, ptmx, pts), plus mknod of
// any device (creating a node is harmless; opening it is what is denied) —
// docker's rules. A privileged container may use every device.
func deviceRules(privileged bool) []specs.LinuxDeviceCgroup {
	if privileged {
		return []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	wildcard := int64(-1)
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: &wildcard, Minor: &wildcard, Access: "m"},
		{Allow: true, Type: "b", Major: &wildcard, Minor: &wildcard, Access: "m"},
	}
}

// swapAccounted reports whether the memory cgroup can limit swap (cgroup
// v1 with swapaccount, or v2 with the swap controller), without which
// runc refuses a swap limit.
func swapAccounted() bool {
	if !cgroup2() {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		return err == nil
	}
	// The root cgroup has no memory.swap.max: look at our own.
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			_, err := os.Stat(filepath.Join("/sys/fs/cgroup", p, "memory.swap.max"))
			return err == nil
		}
	}
	return false
}

// cgroup2 reports whether the host runs the unified hierarchy only.
func cgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
