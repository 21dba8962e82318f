package oci

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maskedPaths are hidden from a container that is not privileged (docker's
// list): kernel state that leaks the host's or lets a process poke at it.
var maskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// readonlyPaths are mounted read-only in a container that is not privileged.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// defaultMounts are docker's: /sys and the cgroup tree read-only unless
// privileged.
func defaultMounts(privileged bool) []specs.Mount {
	sysMode := "ro"
	if privileged {
		sysMode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysMode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysMode}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

// mounts returns the defaults, then Mounts, Binds and Tmpfs, the user
// mounts ordered so that a mount comes after any on a parent directory
// (a -v /host:/data then an image VOLUME /data/sub: the volume stays
// visible, as docker's sort by depth); a user mount replaces a default
// one with the same destination, and two user mounts on one destination
// are an error (docker's "Duplicate mount point").
func mounts(opts Options) ([]specs.Mount, error) {
	var user []specs.Mount
	for _, m := range opts.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("oci: mount destination %q is not an absolute path: %w", m.Destination, errdefs.ErrInvalidArgument)
		}
		m.Destination = path.Clean(m.Destination)
		user = append(user, m)
	}
	for _, b := range opts.Binds {
		m, err := ParseBind(b)
		if err != nil {
			return nil, err
		}
		user = append(user, m)
	}
	for _, t := range opts.Tmpfs {
		m, err := ParseTmpfs(t)
		if err != nil {
			return nil, err
		}
		user = append(user, m)
	}
	seen := map[string]bool{}
	for _, m := range user {
		if m.Destination == "/" {
			return nil, fmt.Errorf("oci: a mount on / replaces the root filesystem: %w", errdefs.ErrInvalidArgument)
		}
		if seen[m.Destination] {
			return nil, fmt.Errorf("oci: two mounts on %s: %w", m.Destination, errdefs.ErrInvalidArgument)
		}
		seen[m.Destination] = true
	}
	slices.SortStableFunc(user, func(a, b specs.Mount) int {
		return depth(a.Destination) - depth(b.Destination)
	})
	var out []specs.Mount
	for _, m := range defaultMounts(opts.Privileged) {
		if !seen[m.Destination] {
			out = append(out, m)
		}
	}
	return append(out, user...), nil
}

// depth is the number of components of a clean absolute path.
func depth(p string) int {
	return strings.Count(p, "/")
}

// ParseBind parses -v SRC:DST[:OPTIONS] where SRC is an absolute host path
// that must exist, DST an absolute path in the container and OPTIONS a
// comma-separated list of ro or rw and a propagation mode (rprivate by
// default, as docker). A missing source is ErrNotFound naming it (docker
// creates it; a typo would then mount an empty directory); anything else
// malformed is ErrInvalidArgument.
func ParseBind(spec string) (specs.Mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return specs.Mount{}, fmt.Errorf("oci: bind %q: want SRC:DST[:OPTIONS]: %w", spec, errdefs.ErrInvalidArgument)
	}
	src, dst := parts[0], parts[1]
	if !path.IsAbs(src) {
		return specs.Mount{}, fmt.Errorf("oci: bind %q: source %q is not an absolute path (named volumes are resolved before): %w", spec, src, errdefs.ErrInvalidArgument)
	}
	if !path.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("oci: bind %q: destination %q is not an absolute path: %w", spec, dst, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return specs.Mount{}, fmt.Errorf("oci: bind source %s does not exist: %w", src, errdefs.ErrNotFound)
		}
		return specs.Mount{}, fmt.Errorf("oci: bind source %s: %w", src, err)
	}
	opts := []string{"rbind"}
	mode, propagation := "", ""
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro", "rw":
				if mode != "" {
					return specs.Mount{}, fmt.Errorf("oci: bind %q: two modes: %w", spec, errdefs.ErrInvalidArgument)
				}
				mode = o
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				if propagation != "" {
					return specs.Mount{}, fmt.Errorf("oci: bind %q: two propagation modes: %w", spec, errdefs.ErrInvalidArgument)
				}
				propagation = o
			default:
				return specs.Mount{}, fmt.Errorf("oci: bind %q: unknown option %q: %w", spec, o, errdefs.ErrInvalidArgument)
			}
		}
	}
	if mode == "ro" {
		opts = append(opts, "ro")
	}
	opts = append(opts, firstNonEmpty(propagation, "rprivate"))
	return specs.Mount{Destination: path.Clean(dst), Type: "bind", Source: path.Clean(src), Options: opts}, nil
}

// ParseTmpfs parses --tmpfs DST[:OPTIONS]: a tmpfs with docker's defaults
// noexec, nosuid, nodev, and the mount options given (size=64m, mode=1777,
// exec…) after them.
func ParseTmpfs(spec string) (specs.Mount, error) {
	dst, options, _ := strings.Cut(spec, ":")
	if !path.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("oci: tmpfs %q: destination %q is not an absolute path: %w", spec, dst, errdefs.ErrInvalidArgument)
	}
	opts := []string{"noexec", "nosuid", "nodev"}
	if options != "" {
		for _, o := range strings.Split(options, ",") {
			if o == "" || strings.ContainsAny(o, " \t\n") {
				return specs.Mount{}, fmt.Errorf("oci: tmpfs %q: bad option %q: %w", spec, o, errdefs.ErrInvalidArgument)
			}
			if !slices.Contains(opts, o) {
				opts = append(opts, o)
			}
		}
	}
	return specs.Mount{Destination: path.Clean(dst), Type: "tmpfs", Source: "tmpfs", Options: opts}, nil
}
