package v2

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// BinaryName returns the shim binary of a runtime name, as containerd
// resolves it: io.containerd.runc.v2 is containerd-shim-runc-v2. A name of
// fewer than two dotted parts is errdefs.ErrInvalidArgument.
func BinaryName(runtime string) (string, error) {
	parts := strings.Split(runtime, ".")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" || strings.ContainsAny(runtime, "/ ") {
		return "", fmt.Errorf("runtime %q: want io.containerd.<name>.<version> or an absolute path: %w", runtime, errdefs.ErrInvalidArgument)
	}
	return fmt.Sprintf("containerd-shim-%s-%s", parts[len(parts)-2], parts[len(parts)-1]), nil
}

// resolveBinary finds the shim of a runtime: path when given (the tasks
// API's runtime_path), the runtime name itself when absolute, else its
// BinaryName on PATH. A shim that is not installed is errdefs.ErrNotFound.
func resolveBinary(runtime, path string) (string, error) {
	if path == "" && filepath.IsAbs(runtime) {
		path = runtime
	}
	if path != "" {
		if !filepath.IsAbs(path) {
			return "", fmt.Errorf("runtime path %q: must be absolute: %w", path, errdefs.ErrInvalidArgument)
		}
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("runtime %s: shim %s: %w: %w", runtime, path, err, errdefs.ErrNotFound)
		}
		return path, nil
	}
	name, err := BinaryName(runtime)
	if err != nil {
		return "", err
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("runtime %s: shim %s is not installed (not on PATH): %w", runtime, name, errdefs.ErrNotFound)
	}
	return bin, nil
}

// shimCommand is the shim binary run with containerd's arguments and
// environment for one action ("start" or "delete").
func (m *Manager) shimCommand(ctx context.Context, binary, ns, id, bundle, action string) *exec.Cmd {
	args := []string{"-namespace", ns, "-address", m.cfg.Address, "-publish-binary", m.publishBinary, "-id", id}
	if action == "delete" {
		args = append(args, "-bundle", bundle)
	}
	if m.cfg.Debug {
		args = append(args, "-debug")
	}
	args = append(args, action)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(),
		"GOMAXPROCS=2",
		fmt.Sprintf("MAX_SHIM_VERSION=%d", maxVersion),
		"TTRPC_ADDRESS="+m.ttrpcAddress(),
		"GRPC_ADDRESS="+m.cfg.Address,
		"NAMESPACE="+ns,
	)
	// A process group of its own: a signal to stratad's group (Ctrl-C,
	// systemd's KillMode=process aside) does not reach the shim, which
	// must outlive the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// startShim runs the shim's start command in bundle and parses its
// answer. Shims of containerd 1.x–2.2 read the runtime options on stdin
// as an Any (runc's ShimCgroup, for one); shims of 2.3 and later read
// bootstrap parameters there instead, and refuse anything else saying
// they were "started through the deprecated API". So the options go
// first, and a shim that refuses them is started again with bootstrap
// parameters; which form a binary wants is remembered.
func (m *Manager) startShim(ctx context.Context, binary, ns, id, bundle string, opts *anypb.Any) (Bootstrap, error) {
	m.mu.Lock()
	bootstrap := m.bootstrapShims[binary]
	m.mu.Unlock()
	for {
		var stdin []byte
		var err error
		if bootstrap {
			stdin, err = m.bootstrapParams(ns, id, opts)
		} else if opts != nil {
			stdin, err = proto.Marshal(opts)
		}
		if err != nil {
			return Bootstrap{}, fmt.Errorf("runtime options: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		cmd := m.shimCommand(ctx, binary, ns, id, bundle, "start")
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil && !bootstrap && bytes.Contains(out, []byte("started through the deprecated API")) {
			bootstrap = true
			m.mu.Lock()
			m.bootstrapShims[binary] = true
			m.mu.Unlock()
			continue
		}
		if err != nil {
			return Bootstrap{}, fmt.Errorf("start shim %s: %w: %s", filepath.Base(binary), err, bytes.TrimSpace(out))
		}
		return parseBootstrap(out)
	}
}

// bootstrapParams are what shims of containerd 2.3 and later read on
// stdin at start: who they are, where the daemon is, the runtime options.
func (m *Manager) bootstrapParams(ns, id string, opts *anypb.Any) ([]byte, error) {
	level := bootapi.LogLevel_LOG_LEVEL_INFO
	if m.cfg.Debug {
		level = bootapi.LogLevel_LOG_LEVEL_DEBUG
	}
	p := &bootapi.BootstrapParams{
		InstanceID: id, Namespace: ns, LogLevel: level,
		ContainerdVersion:      m.cfg.Version,
		ContainerdTtrpcAddress: m.ttrpcAddress(),
		ContainerdGrpcAddress:  m.cfg.Address,
		ContainerdBinary:       m.publishBinary,
	}
	if opts != nil {
		if err := p.AddExtension(opts); err != nil {
			return nil, err
		}
	}
	return proto.Marshal(p)
}

// deleteShim runs the shim's delete command, which cleans up after a task
// whose shim is gone (runc delete, unmount of the rootfs) and reports how
// it ended. The command gets timeout to finish, as containerd's
// io.containerd.timeout.shim.cleanup: its callers are cleanups that
// cannot be cancelled (a failed Create, the daemon's start, the cleanup
// after a shim died, which Close waits for), and a wedged runtime must
// not hold them for ever.
func (m *Manager) deleteShim(ctx context.Context, binary, ns, id, bundle string) (*taskapi.DeleteResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := m.shimCommand(ctx, binary, ns, id, bundle, "delete")
	// Killed at the deadline; a child it left holding the output must
	// not hold Wait either.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (did not finish in %s): %w", err, timeout, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("shim %s delete: %w: %s", filepath.Base(binary), err, bytes.TrimSpace(stderr.Bytes()))
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("shim %s delete: answer: %w", filepath.Base(binary), err)
	}
	return &resp, nil
}
