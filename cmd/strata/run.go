package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/engine"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/oci"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/volumes"
)

// statusError is an error with the exit status docker gives it: 125 for
// strata's own failures in run, 126 and 127 for a command the image
// cannot run or does not have.
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

// runStatus is the exit status of a failed run: 127 for a command not
// found, 126 for one not executable, 125 for the rest.
func runStatus(err error) error {
	if err == nil {
		return nil
	}
	var se statusError
	if errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, engine.ErrCommandNotFound):
		return statusError{127, err}
	case errors.Is(err, engine.ErrCommandNotExecutable):
		return statusError{126, err}
	}
	return statusError{125, err}
}

// bridgeEnv overrides the default network's bridge and subnet
// ("NAME=SUBNET"): tests use it to stay off the host's strata0.
const bridgeEnv = "STRATA_DEFAULT_BRIDGE"

// withEngine runs fn with an engine over the command's store: the
// daemon's, or in embedded mode this process's own server over it
// (embedserver.go).
func (a *app) withEngine(cmd *cobra.Command, fn func(ctx context.Context, s backend, e *engine.Engine) error) error {
	return a.withBackend(cmd, func(ctx context.Context, s backend) error {
		e, err := a.newEngine(s)
		if err != nil {
			return err
		}
		// A daemon without the tasks service has nothing to reap.
		if _, err := e.Reap(ctx); err != nil && !errors.Is(err, errdefs.ErrNotImplemented) {
			a.logger.Warn("remove exited --rm containers", "error", err)
		}
		return fn(ctx, s, e)
	})
}

// newEngine returns an engine over s.
func (a *app) newEngine(s backend) (*engine.Engine, error) {
	var conn *grpc.ClientConn
	switch b := s.(type) {
	case *remote:
		conn = b.conn
	case *embedded:
		c, err := b.serve(a)
		if err != nil {
			return nil, err
		}
		conn = c
	}
	cfg := engine.Config{Store: s, Tasks: tasksapi.NewTasksClient(conn), Snapshotter: s.Info().DefaultSnapshotter, Logger: a.logger,
		Unpack: func(ctx context.Context, m ocispec.Descriptor, sn string) (digest.Digest, error) {
			res, err := s.Run(ctx, jobs.Request{Unpack: &jobs.UnpackRequest{Manifest: m, Snapshotter: sn}}, jobs.Env{Logger: a.logger})
			return res.ChainID, err
		}}
	if root, err := hostFilesRoot(s, "logs"); err == nil {
		cfg.LogRoot = root
	}
	if vs, err := openVolumes(s); err != nil {
		a.logger.Debug("no named volumes", "error", err)
	} else {
		cfg.Volumes = vs
	}
	if nm, err := a.network(s); err != nil {
		a.logger.Debug("no container networking", "error", err)
	} else {
		cfg.Network = nm
	}
	return engine.New(cfg), nil
}

// network opens the container networks of the store: under its root
// (network/), with the runtime state beside it (network.run/), where
// stratad finds them to tear down what exited containers held.
func (a *app) network(s backend) (*network.Manager, error) {
	root := s.Info().Root
	if root == "" || os.Geteuid() != 0 {
		return nil, fmt.Errorf("container networking needs root and the store's root: %w", errdefs.ErrUnavailable)
	}
	opts := []network.Opt{network.WithLogger(a.logger)}
	if env := os.Getenv(bridgeEnv); env != "" {
		name, subnet, _ := strings.Cut(env, "=")
		p, err := netip.ParsePrefix(subnet)
		if err != nil {
			return nil, fmt.Errorf("$%s %q: %w", bridgeEnv, env, err)
		}
		opts = append(opts, network.WithDefaultNetwork(name, p))
	}
	return network.New(filepath.Join(root, "network"), filepath.Join(root, "network.run"), opts...)
}

type runFlags struct {
	detach, rm, interactive, tty   bool
	name, user, workdir, hostname  string
	entrypoint                     string
	env, envFiles, volumes, mounts []string
	tmpfs, ports, capAdd, capDrop  []string
	networkName                    string
	readOnly, privileged           bool
	memory                         string
	cpus                           float64
	pidsLimit                      int64
	pull, platform                 string
	logOpts                        []string
}

func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container's ID")
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open and pass it to the container")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.StringVar(&f.name, "name", "", "the container's name, unique in the namespace")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "KEY=VALUE in the environment (repeatable)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "file of KEY=VALUE lines (repeatable)")
	fl.StringVarP(&f.user, "user", "u", "", "user: name, uid, name:group or uid:gid")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fl.StringVar(&f.hostname, "hostname", "", "the container's hostname")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount SRC:DST[:ro], volume NAME:DST[:ro], or a new anonymous volume on DST (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount type=bind|volume|tmpfs,source=…,target=…[,readonly] (repeatable)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "tmpfs on DST[:OPTIONS] (repeatable)")
	fl.StringArrayVarP(&f.ports, "publish", "p", nil, "publish [IP:]HOSTPORT:PORT[/PROTO] (repeatable)")
	fl.StringVar(&f.networkName, "network", "bridge", "network: bridge, host, none or a user-defined one")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fl.BoolVar(&f.privileged, "privileged", false, "lift the capability bounds, seccomp, masked paths and device rules")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability (repeatable; ALL)")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability (repeatable; ALL)")
	fl.StringVar(&f.memory, "memory", "", "memory limit: bytes or with a unit (64m, 1g)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit, in CPUs (0.5)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "process limit (0: none)")
	fl.StringVar(&f.pull, "pull", "missing", "pull the image: always, missing or never")
	fl.StringVar(&f.platform, "platform", "", "platform of the image, e.g. linux/arm64")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "log rotation: max-size=10m, max-file=3 (repeatable, or comma-separated)")
}

// parseBytes reads docker's memory sizes: 1024, 64m, 1g, 512k, 2b.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "b":
		s = s[:len(s)-1]
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a size such as 64m or 1g", s)
	}
	return n * mult, nil
}

// parseMount reads --mount type=bind,source=S,target=T[,readonly],
// type=volume[,source=NAME],target=T[,readonly][,volume-nocopy] (no
// source: an anonymous volume) and type=tmpfs,target=T into the -v and
// --tmpfs forms, so that both flags take the same path.
func parseMount(s string) (bind, tmpfs string, err error) {
	kv := map[string]string{}
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		kv[strings.ToLower(k)] = v
	}
	target := kv["target"]
	for _, k := range []string{"destination", "dst"} {
		if target == "" {
			target = kv[k]
		}
	}
	source := kv["source"]
	if source == "" {
		source = kv["src"]
	}
	_, ro := kv["readonly"]
	_, ro2 := kv["ro"]
	if v, ok := kv["readonly"]; ok && v != "" && v != "true" && v != "1" {
		ro = false // readonly=false
	}
	switch kv["type"] {
	case "bind", "":
		if source == "" || target == "" {
			return "", "", fmt.Errorf("--mount %q: a bind needs source and target", s)
		}
		b := source + ":" + target
		if ro || ro2 {
			b += ":ro"
		}
		return b, "", nil
	case "volume":
		if target == "" || !strings.HasPrefix(target, "/") {
			return "", "", fmt.Errorf("--mount %q: a volume needs an absolute target", s)
		}
		if strings.HasPrefix(source, "/") || strings.HasPrefix(source, ".") || strings.Contains(source, ":") {
			return "", "", fmt.Errorf("--mount %q: a volume's source is a volume name (type=bind mounts a host path)", s)
		}
		var opts []string
		if ro || ro2 {
			opts = append(opts, "ro")
		}
		if _, ok := kv["volume-nocopy"]; ok {
			opts = append(opts, "nocopy")
		}
		v := target
		if source != "" {
			v = source + ":" + target
		}
		if len(opts) > 0 {
			v += ":" + strings.Join(opts, ",")
		}
		return v, "", nil
	case "tmpfs":
		if target == "" {
			return "", "", fmt.Errorf("--mount %q: a tmpfs needs a target", s)
		}
		return "", target, nil
	}
	return "", "", fmt.Errorf("--mount %q: type %q: want bind, volume or tmpfs", s, kv["type"])
}

// options turns the flags into the engine's create options (image aside).
func (f *runFlags) options(cmd *cobra.Command, args []string) (engine.CreateOptions, error) {
	o := engine.CreateOptions{Name: f.name, Network: f.networkName, AutoRemove: f.rm && f.detach}
	mem, err := parseBytes(f.memory)
	if err != nil {
		return o, fmt.Errorf("--memory %w", err)
	}
	if f.cpus < 0 {
		return o, fmt.Errorf("--cpus %v: want a number of CPUs ≥ 0", f.cpus)
	}
	if f.pull != "always" && f.pull != "missing" && f.pull != "never" {
		return o, fmt.Errorf("--pull %q: want always, missing or never", f.pull)
	}
	o.Spec = oci.Options{Args: args, Env: f.env, EnvFiles: f.envFiles, User: f.user, Workdir: f.workdir, Hostname: f.hostname,
		TTY: f.tty, Privileged: f.privileged, ReadOnly: f.readOnly, CapAdd: f.capAdd, CapDrop: f.capDrop,
		Binds: f.volumes, Tmpfs: f.tmpfs, Memory: mem, CPUs: f.cpus, PidsLimit: f.pidsLimit}
	if w, h, ok := terminalSize(cmd.InOrStdin(), cmd.OutOrStdout()); ok && f.tty && !f.detach {
		o.Spec.ConsoleSize = &specs.Box{Width: uint(w), Height: uint(h)}
	}
	if cmd.Flags().Changed("entrypoint") {
		o.Spec.Entrypoint = &f.entrypoint
	}
	for _, m := range f.mounts {
		b, t, err := parseMount(m)
		if err != nil {
			return o, err
		}
		if b != "" {
			o.Spec.Binds = append(o.Spec.Binds, b)
		} else {
			o.Spec.Tmpfs = append(o.Spec.Tmpfs, t)
		}
	}
	var binds []string
	for _, v := range o.Spec.Binds {
		if volumes.IsVolume(v) {
			o.Volumes = append(o.Volumes, v)
			continue
		}
		if src, _, _ := strings.Cut(v, ":"); !filepath.IsAbs(src) {
			return o, fmt.Errorf("-v %q: the source must be an absolute host path or a volume name", v)
		}
		binds = append(binds, v)
	}
	o.Spec.Binds = binds
	var logOpts []string
	for _, lo := range f.logOpts {
		logOpts = append(logOpts, strings.Split(lo, ",")...)
	}
	if _, err := logs.ParseOpts(logs.Config{}, logOpts); err != nil {
		return o, fmt.Errorf("--log-opt: %w", err)
	}
	for _, p := range f.ports {
		pm, err := network.ParsePort(p)
		if err != nil {
			return o, err
		}
		o.Ports = append(o.Ports, pm)
	}
	if f.platform != "" {
		p, err := images.ParsePlatform(f.platform)
		if err != nil {
			return o, fmt.Errorf("--platform: %w", err)
		}
		o.Platform = images.Only(p)
	}
	return o, nil
}

func newRunCommand(a *app) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container from an image, as docker run",
		Long: `Creates a container from IMAGE (pulled first unless --pull never, or when
missing) and runs it: in the foreground, with its output on ours and its
exit status as ours, or with -d in the background, printing its ID.
The exit status is the container's; 125 when strata fails, 126 when the
command cannot be run, 127 when the image does not have it.`,
		Example: `  strata run --rm 127.0.0.1:5000/busybox echo hi
  strata run -d --name web -p 127.0.0.1:8080:80 127.0.0.1:5000/busybox httpd -f -p 80
  strata run --rm -v /srv/data:/data:ro --read-only --cap-drop ALL busybox ls /data`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return statusError{125, usagef("%q needs an IMAGE; see %q", cmd.CommandPath(), cmd.CommandPath()+" --help")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd, args[1:])
			if err != nil {
				return statusError{125, usageError{err}}
			}
			// -d attaches no stdin (docker's -dit is fine anywhere).
			if err := checkTTY(f.interactive && !f.detach, f.tty, cmd.InOrStdin()); err != nil {
				return statusError{125, err}
			}
			return runStatus(a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				img, err := a.runImage(ctx, cmd, s, args[0], f)
				if err != nil {
					return err
				}
				o.Image = img
				o.ID = engine.NewID()
				if f.detach {
					if o.LogURI, err = a.logURI(s, o.ID, f.logOpts); err != nil {
						return err
					}
				}
				c, err := e.Create(ctx, o)
				if err != nil {
					return err
				}
				if f.detach {
					if err := e.Start(ctx, c.ID, engine.IO{}); err != nil {
						if rerr := e.Remove(context.WithoutCancel(ctx), c.ID, engine.RemoveOptions{Force: true, Volumes: true}); rerr != nil {
							a.logger.Warn("remove the container that did not start", "container", c.ID, "error", rerr)
						}
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), c.ID)
					return nil
				}
				var stdin io.Reader
				if f.interactive {
					stdin = cmd.InOrStdin()
				}
				var hold *lockHolder
				if _, ok := s.(*embedded); ok && stdin == nil {
					// Embedded: the store (and its lock) is let go while
					// the container runs, or every other strata command
					// would wait for it to end.
					hold = &lockHolder{release: a.close, reacquire: func() (*engine.Engine, error) {
						s, err := a.open(context.WithoutCancel(ctx))
						if err != nil {
							return nil, err
						}
						return a.newEngine(s)
					}}
				}
				status, e, err := attachRun(ctx, e, c.ID, stdin, cmd.OutOrStdout(), cmd.ErrOrStderr(), f.tty, hold)
				if e == nil {
					return err // the store could not be opened again
				}
				// The task is done (or never was): delete it, keep its
				// status, tear its network down; --rm removes the rest.
				bg := context.WithoutCancel(ctx)
				if serr := e.Stop(bg, c.ID, 0); serr != nil && err == nil {
					err = serr
				}
				if err != nil || f.rm {
					// --rm, or a run that did not start: nothing is left
					// but named volumes, as docker's --rm.
					if rerr := e.Remove(bg, c.ID, engine.RemoveOptions{Force: true, Volumes: true}); rerr != nil && !errors.Is(rerr, errdefs.ErrNotFound) {
						if err != nil {
							a.logger.Warn("remove the container that did not start", "container", c.ID, "error", rerr)
						} else {
							err = rerr
						}
					}
				}
				if err != nil {
					return err
				}
				exitCode = int(status)
				return nil
			}))
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return statusError{125, usageError{err}} })
	f.register(cmd)
	return cmd
}

// logURI returns the stdio URI that makes the shim run this executable
// as container id's logger, with --log-opt over the store's limits
// (logLimits).
func (a *app) logURI(s backend, id string, opts []string) (string, error) {
	root, err := hostFilesRoot(s, "logs")
	if err != nil {
		return "", err
	}
	dir, err := logs.Dir(root, a.namespace, id)
	if err != nil {
		return "", err
	}
	var split []string
	for _, o := range opts {
		split = append(split, strings.Split(o, ",")...)
	}
	limits, err := logLimits(s)
	if err != nil {
		return "", err
	}
	cfg, err := logs.ParseOpts(limits.Config(dir), split)
	if err != nil {
		return "", fmt.Errorf("--log-opt: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("logs: the strata executable: %w", err)
	}
	return logs.URI(exe, cfg)
}

// runImage finds the image run names, pulling it first as --pull says,
// through the same job and progress display as strata pull.
func (a *app) runImage(ctx context.Context, cmd *cobra.Command, s backend, ref string, f *runFlags) (images.Image, error) {
	if f.pull != "always" {
		img, err := resolveImage(ctx, s.Images(), a.namespace, ref)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) || f.pull == "never" {
			if err != nil && f.pull == "never" {
				return img, fmt.Errorf("%w (and --pull never)", err)
			}
			return img, err
		}
	}
	r, err := parseReference(ref)
	if err != nil {
		return images.Image{}, err
	}
	reg, creds, err := a.registry(&registryFlags{}, r, s)
	if err != nil {
		return images.Image{}, err
	}
	o := &jobs.PullRequest{Ref: r.String(), Registry: reg}
	if f.platform != "" {
		p, err := images.ParsePlatform(f.platform)
		if err != nil {
			return images.Image{}, err
		}
		o.Platforms = []ocispec.Platform{p}
	}
	pr := progress.New(cmd.ErrOrStderr(), progress.Auto)
	_, err = s.Run(ctx, jobs.Request{Pull: o}, jobs.Env{Progress: pr, Credentials: creds, Logger: a.logger, UserAgent: userAgent()})
	pr.Close(err)
	if err != nil {
		return images.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	return resolveImage(ctx, s.Images(), a.namespace, r.String())
}

// attachRun starts the container with its stdio on FIFOs copied to and
// from ours, waits for it and returns its exit status. The first SIGINT
// or SIGTERM (ctx) is passed on to the container as SIGTERM.
func attachRun(ctx context.Context, e *engine.Engine, id string, stdin io.Reader, stdout, stderr io.Writer, tty bool, hold *lockHolder) (uint32, *engine.Engine, error) {
	dir, err := os.MkdirTemp("", "strata-run")
	if err != nil {
		return 0, e, err
	}
	defer os.RemoveAll(dir)
	stdio := engine.IO{Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr"), Terminal: tty}
	outs := map[string]io.Writer{stdio.Stdout: stdout, stdio.Stderr: stderr}
	if tty {
		delete(outs, stdio.Stderr)
		stdio.Stderr = ""
	}
	var copies fifoCopies
	for p, w := range outs {
		if err := copies.add(p, w); err != nil {
			return 0, e, fmt.Errorf("container %s: stdio: %w", id, err)
		}
	}
	if stdin != nil {
		stdio.Stdin = filepath.Join(dir, "stdin")
		if err := unix.Mkfifo(stdio.Stdin, 0o600); err != nil {
			return 0, e, fmt.Errorf("container %s: stdin: %w", id, err)
		}
	}
	if tty {
		defer rawInput(stdin, e.Logger())()
	}
	if err := e.Start(ctx, id, stdio); err != nil {
		copies.abandon()
		return 0, e, err
	}
	unfollow := func() {}
	if tty {
		unfollow = sync.OnceFunc(followTerminal(ctx, stdin, stdout, e.Logger(), func(ctx context.Context, width, height uint32) error {
			return e.Resize(ctx, id, width, height)
		}))
		defer unfollow()
	}
	if stdin != nil {
		// Closing our stdin is the container's EOF, through CloseIO.
		defer feedStdin(stdio.Stdin, stdin, func() {
			if err := e.CloseStdin(context.WithoutCancel(ctx), id); err != nil {
				e.Logger().Debug("close the container's stdin", "container", id, "error", err)
			}
		})()
	}
	if hold != nil {
		// The engine goes with the store: the terminal keeps the size it
		// has (embedded run -t without -i).
		unfollow()
		if err := hold.release(); err != nil {
			return 0, e, err
		}
		// The outputs end when the container does (or when it closes
		// them): then the store is opened again to learn its status.
		ended := make(chan struct{})
		go func() {
			copies.wait()
			close(ended)
		}()
		select {
		case <-ended:
		case <-ctx.Done():
		}
		var err error
		if e, err = hold.reacquire(); err != nil {
			return 0, nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { e.Kill(context.WithoutCancel(ctx), id, unix.SIGTERM) })
	defer stop()
	status, err := e.Wait(context.WithoutCancel(ctx), id)
	copies.wait()
	return status, e, err
}

// lockHolder lets go of an embedded store while a container runs in the
// foreground, and takes it again to wait for its status.
type lockHolder struct {
	release   func() error
	reacquire func() (*engine.Engine, error)
}
