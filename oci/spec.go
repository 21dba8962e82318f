package oci

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options are what `strata run` says about a container, in docker's terms.
// The zero value of each field means docker's default.
type Options struct {
	// ID names the container; its first 12 characters are the default
	// hostname and it ends the default cgroups path.
	ID string
	// Rootfs is the container's root filesystem on the host, already
	// mounted: the spec's root.path, and where /etc/passwd and /etc/group
	// are read.
	Rootfs string
	// Image is the image's runtime config (entrypoint, cmd, env, user,
	// working dir, stop signal).
	Image ocispec.ImageConfig

	// Args replace the image's CMD when not empty (docker run IMAGE ARGS…).
	Args []string
	// Entrypoint, when not nil, replaces the image's ENTRYPOINT and drops
	// its CMD, as docker's --entrypoint does; an empty string clears it.
	Entrypoint *string
	// Env entries KEY=VALUE (-e) override EnvFiles, which override the
	// image's env.
	Env []string
	// EnvFiles are docker --env-file files: KEY=VALUE lines, # comments.
	EnvFiles []string
	// User is -u: name, uid, name:group or uid:gid; empty takes the image's.
	User string
	// GroupAdd are extra groups (--group-add), names or gids.
	GroupAdd []string
	// Workdir is -w; empty takes the image's, then "/".
	Workdir string
	// Hostname is --hostname; empty takes the ID's first 12 characters.
	Hostname string
	// TTY allocates a terminal (-t).
	TTY bool
	// ConsoleSize is the terminal's size when the process starts, with
	// TTY (the CLI's own terminal's, as docker's): without it the process
	// may run before a resize reaches its terminal and see 0×0.
	ConsoleSize *specs.Box

	// Privileged lifts masked and read-only paths, the capability bounds,
	// seccomp, no_new_privileges and the device allowlist, and adds the
	// host's devices.
	Privileged bool
	// ReadOnly mounts the root filesystem read-only (--read-only).
	ReadOnly bool
	// CapAdd and CapDrop are --cap-add and --cap-drop: names with or
	// without CAP_, in any case, or ALL.
	CapAdd, CapDrop []string

	// Binds are -v SRC:DST[:ro|rw] with an absolute host path as SRC (named
	// volumes are resolved by the caller to a directory first).
	Binds []string
	// Tmpfs are --tmpfs DST[:OPTIONS].
	Tmpfs []string
	// Mounts are added as they are (--mount, named volumes, the network's
	// /etc/hosts, /etc/resolv.conf and /etc/hostname); like Binds and Tmpfs
	// they replace a default mount with the same destination.
	Mounts []specs.Mount

	// Memory is --memory in bytes; 0 means no limit.
	Memory int64
	// MemorySwap is --memory-swap, memory plus swap in bytes: 0 means twice
	// Memory (docker's default) where the kernel accounts swap, -1 no
	// swap limit.
	MemorySwap int64
	// CPUs is --cpus; 0 means no limit.
	CPUs float64
	// PidsLimit is --pids-limit; 0 or less means no limit.
	PidsLimit int64
	// CgroupParent is the cgroup the container's is created under
	// (cgroupfs driver path); empty means "/strata".
	CgroupParent string

	// NetNSPath is the network namespace to join (made by the network
	// package); empty gives the container a new, empty one (--network none)
	// unless HostNetwork is set.
	NetNSPath string
	// HostNetwork shares the host's network namespace (--network host).
	HostNetwork bool
}

// DefaultPath is docker's PATH for a container whose image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Generate returns the runtime spec of a container. Bad options
// (an unknown capability, a relative destination, a missing bind source, a
// user the image does not know, no command at all) return an error wrapping
// errdefs.ErrInvalidArgument or errdefs.ErrNotFound that names the option.
func Generate(ctx context.Context, opts Options) (*specs.Spec, error) {
	if opts.ID == "" {
		return nil, fmt.Errorf("oci: container ID is empty: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Rootfs == "" || !path.IsAbs(opts.Rootfs) {
		return nil, fmt.Errorf("oci: rootfs %q of container %s is not an absolute path: %w", opts.Rootfs, opts.ID, errdefs.ErrInvalidArgument)
	}
	if opts.NetNSPath != "" && opts.HostNetwork {
		return nil, fmt.Errorf("oci: container %s: a network namespace and the host network are exclusive: %w", opts.ID, errdefs.ErrInvalidArgument)
	}
	if _, err := StopSignal(opts.Image); err != nil {
		return nil, err
	}

	args, err := command(opts)
	if err != nil {
		return nil, err
	}
	hostname, err := hostnameOf(opts)
	if err != nil {
		return nil, err
	}
	user, home, err := resolveUser(ctx, opts.Rootfs, firstNonEmpty(opts.User, opts.Image.User), opts.GroupAdd)
	if err != nil {
		return nil, fmt.Errorf("oci: container %s: %w", opts.ID, err)
	}
	env, err := environment(opts, hostname, home)
	if err != nil {
		return nil, err
	}
	cwd := firstNonEmpty(opts.Workdir, opts.Image.WorkingDir, "/")
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("oci: working directory %q is not an absolute path: %w", cwd, errdefs.ErrInvalidArgument)
	}
	caps, err := capabilities(opts.Privileged, opts.CapAdd, opts.CapDrop)
	if err != nil {
		return nil, err
	}
	mounts, err := mounts(opts)
	if err != nil {
		return nil, err
	}
	resources, err := resources(opts)
	if err != nil {
		return nil, err
	}

	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: opts.Rootfs, Readonly: opts.ReadOnly},
		Process: &specs.Process{
			Terminal:        opts.TTY,
			ConsoleSize:     consoleSize(opts),
			User:            user,
			Args:            args,
			Env:             env,
			Cwd:             path.Clean(cwd),
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: !opts.Privileged,
		},
		Hostname: hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			Resources:   resources,
			CgroupsPath: path.Join(firstNonEmpty(opts.CgroupParent, "/strata"), opts.ID),
			Namespaces:  namespaces(opts),
		},
	}
	if !opts.HostNetwork {
		// Namespaced sysctls docker sets since 20.10: a container may bind
		// low ports without CAP_NET_BIND_SERVICE and ping without NET_RAW;
		// both are confined to its own network namespace.
		spec.Linux.Sysctl = map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0",
			"net.ipv4.ping_group_range":           "0 2147483647",
		}
	}
	if opts.Privileged {
		devices, err := hostDevices()
		if err != nil {
			return nil, fmt.Errorf("oci: container %s: host devices for --privileged: %w", opts.ID, err)
		}
		spec.Linux.Devices = devices
	} else {
		spec.Linux.MaskedPaths = append([]string(nil), maskedPaths...)
		spec.Linux.ReadonlyPaths = append([]string(nil), readonlyPaths...)
		seccomp, err := defaultSeccomp(spec)
		if err != nil {
			return nil, fmt.Errorf("oci: container %s: %w", opts.ID, err)
		}
		spec.Linux.Seccomp = seccomp
	}
	return spec, nil
}

// command is docker's rule: --entrypoint replaces ENTRYPOINT and drops the
// image's CMD; arguments replace CMD.
func command(opts Options) ([]string, error) {
	entrypoint, cmd := opts.Image.Entrypoint, opts.Image.Cmd
	if opts.Entrypoint != nil {
		entrypoint, cmd = nil, nil
		if *opts.Entrypoint != "" {
			entrypoint = []string{*opts.Entrypoint}
		}
	}
	if len(opts.Args) > 0 {
		cmd = opts.Args
	}
	args := append(append([]string(nil), entrypoint...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("oci: container %s: no command: the image has no ENTRYPOINT or CMD and none was given: %w", opts.ID, errdefs.ErrInvalidArgument)
	}
	return args, nil
}

func hostnameOf(opts Options) (string, error) {
	h := opts.Hostname
	if h == "" {
		h = opts.ID
		if len(h) > 12 {
			h = h[:12]
		}
	}
	if err := validHostname(h); err != nil {
		return "", fmt.Errorf("oci: hostname %q: %w", h, err)
	}
	return h, nil
}

// validHostname applies RFC 1123: dot-separated labels of letters, digits
// and inner hyphens, 63 bytes each, 253 in all (the kernel takes 64).
func validHostname(h string) error {
	if h == "" || len(h) > 64 {
		return fmt.Errorf("must be 1 to 64 characters: %w", errdefs.ErrInvalidArgument)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q is empty, too long or starts or ends with '-': %w", label, errdefs.ErrInvalidArgument)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not a letter, digit or '-': %w", c, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

func namespaces(opts Options) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}
	switch {
	case opts.HostNetwork:
	case opts.NetNSPath != "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: opts.NetNSPath})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if cgroup2() {
		// docker's default on cgroup v2: the container sees its own cgroup
		// as the root of /sys/fs/cgroup. On v1 it shares the host's.
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// consoleSize is the process's ConsoleSize: only with a terminal.
func consoleSize(opts Options) *specs.Box {
	if !opts.TTY || opts.ConsoleSize == nil {
		return nil
	}
	b := *opts.ConsoleSize
	return &b
}
