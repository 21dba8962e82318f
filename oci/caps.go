package oci

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// DefaultCapabilities is docker's default set, the bounding, effective and
// permitted sets of a container that is not privileged.
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// capabilityNames are Linux's capabilities by number
// (include/uapi/linux/capability.h).
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities returns the capabilities this process can give a
// container, what ALL and --privileged mean: those the kernel knows
// (/proc/sys/kernel/cap_last_cap) and that are in this process's bounding
// set (a sandboxed host may lack some; runc fails to apply one it lacks).
func AllCapabilities() []string {
	last := len(capabilityNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < last {
			last = n
		}
	}
	bounding := ^uint64(0)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
					bounding = n
				}
			}
		}
	}
	var out []string
	for i, c := range capabilityNames[:last+1] {
		if bounding&(1<<i) != 0 {
			out = append(out, c)
		}
	}
	return out
}

// NormalizeCapability returns a capability name in the spec's form
// (CAP_NET_ADMIN from net_admin, NET_ADMIN or cap_net_admin), "ALL" for all,
// or ErrInvalidArgument naming an unknown one.
func NormalizeCapability(name string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(name))
	if c == "ALL" {
		return c, nil
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	if !slices.Contains(capabilityNames, c) {
		return "", fmt.Errorf("oci: unknown capability %q: %w", name, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// capabilities applies docker's rules: --cap-add ALL gives every capability
// but the dropped ones; --cap-drop ALL keeps only the added ones; otherwise
// the defaults (all of them when privileged) minus the dropped plus the
// added.
func capabilities(privileged bool, add, drop []string) ([]string, error) {
	norm := func(names []string) ([]string, error) {
		var out []string
		for _, n := range names {
			c, err := NormalizeCapability(n)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		return out, nil
	}
	add, err := norm(add)
	if err != nil {
		return nil, err
	}
	drop, err = norm(drop)
	if err != nil {
		return nil, err
	}
	all := AllCapabilities()
	base := DefaultCapabilities
	if privileged {
		base = all
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		for _, c := range all {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = append([]string{}, add...)
	default:
		for _, c := range base {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range add {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	for _, c := range caps {
		if !slices.Contains(all, c) {
			return nil, fmt.Errorf("oci: capability %s: this host cannot give it (not in the kernel or in this process's bounding set): %w", c, errdefs.ErrFailedPrecondition)
		}
	}
	return caps, nil
}
