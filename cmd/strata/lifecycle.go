package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/engine"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/oci"
)

// The docker-style verbs over containers (strata run is in run.go).

func newPsCommand(a *app) *cobra.Command {
	var all, quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:   "ps [-a] [-q]",
		Short: "List running containers (-a: all), as docker ps",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				list, err := e.List(ctx, all)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				switch {
				case a.output == "json":
					if list == nil {
						list = []engine.Summary{}
					}
					return printJSON(out, list)
				case quiet:
					for _, c := range list {
						fmt.Fprintln(out, trunc(c.ID, noTrunc))
					}
					return nil
				}
				now := time.Now()
				t := newTable(out, "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
				for _, c := range list {
					command := strings.Join(c.Command, " ")
					if !noTrunc && len(command) > 20 {
						command = command[:19] + "…"
					}
					var ports []string
					for _, p := range c.Ports {
						ports = append(ports, portString(p))
					}
					t.row(trunc(c.ID, noTrunc), c.Image, fmt.Sprintf("%q", command), createdAgo(now, c.Created), c.Status(now),
						strings.Join(ports, ", "), c.Name)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show every container, not only running ones")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	return cmd
}

// portString is docker's PORTS cell: 127.0.0.1:8080->80/tcp.
func portString(p network.PortMapping) string {
	host := fmt.Sprint(p.HostPort)
	if p.HostIP.IsValid() {
		host = p.HostIP.String() + ":" + host
	} else {
		host = "0.0.0.0:" + host
	}
	return fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, p.Protocol)
}

func trunc(id string, noTrunc bool) string {
	if noTrunc || len(id) <= 12 {
		return id
	}
	return id[:12]
}

func createdAgo(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return engine.Summary{State: engine.StateExited, FinishedAt: t}.Status(now)[len("Exited (0) "):]
}

// eachContainer resolves every argument to a container (name or ID
// prefix) and runs fn on it, printing the argument when it succeeds.
func (a *app) eachContainer(cmd *cobra.Command, args []string, what string, fn func(ctx context.Context, e *engine.Engine, id string) error) error {
	return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
		return eachArg(cmd, args, what, func(arg string) error {
			c, err := e.Resolve(ctx, arg)
			if err != nil {
				return err
			}
			return fn(ctx, e, c.ID)
		})
	})
}

func newStopCommand(a *app) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop containers: their stop signal (SIGTERM), then SIGKILL after -t seconds",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return usagef("-t %d: want seconds ≥ 0", timeout)
			}
			return a.eachContainer(cmd, args, "containers not stopped", func(ctx context.Context, e *engine.Engine, id string) error {
				return e.Stop(ctx, id, time.Duration(timeout)*time.Second)
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before SIGKILL")
	return cmd
}

func newKillCommand(a *app) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER...",
		Short: "Send a signal (SIGKILL unless -s says otherwise) to containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(signal)
			if err != nil {
				return err
			}
			return a.eachContainer(cmd, args, "containers not signalled", func(ctx context.Context, e *engine.Engine, id string) error {
				return e.Kill(ctx, id, sig)
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal to send")
	return cmd
}

func newStartCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER...",
		Short: "Start created or stopped containers, in the background",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachContainer(cmd, args, "containers not started", func(ctx context.Context, e *engine.Engine, id string) error {
				return e.Start(ctx, id, engine.IO{})
			})
		},
	}
}

func newRmCommand(a *app) *cobra.Command {
	var force, vols bool
	cmd := &cobra.Command{
		Use:   "rm [-f] [-v] CONTAINER...",
		Short: "Remove containers (-f: kill running ones first), with their root filesystems",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachContainer(cmd, args, "containers not removed", func(ctx context.Context, e *engine.Engine, id string) error {
				return e.Remove(ctx, id, engine.RemoveOptions{Force: force, Volumes: vols})
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	cmd.Flags().BoolVarP(&vols, "volumes", "v", false, "also remove the container's anonymous volumes (named volumes stay)")
	return cmd
}

func containersPrune(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove every container that does not run",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				removed, err := e.Prune(ctx)
				for _, id := range removed {
					fmt.Fprintln(cmd.OutOrStdout(), id)
				}
				return err
			})
		},
	}
}

func newInspectCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers as JSON: state, exit code, ports, network, labels and runtime spec",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				var out []engine.Summary
				for _, arg := range args {
					c, err := e.Resolve(ctx, arg)
					if err != nil {
						return err
					}
					sum, err := e.Inspect(ctx, c.ID)
					if err != nil {
						return err
					}
					out = append(out, sum)
				}
				return printJSON(cmd.OutOrStdout(), out)
			})
		},
	}
}

func newExecCommand(a *app) *cobra.Command {
	var (
		interactive, tty bool
		user, workdir    string
		env              []string
	)
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container and exit with its status",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var stdin io.Reader
			if interactive {
				stdin = cmd.InOrStdin()
			}
			if err := checkTTY(interactive, tty, stdin); err != nil {
				return err
			}
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				c, err := e.Resolve(ctx, args[0])
				if err != nil {
					return err
				}
				var spec specs.Spec
				if c.Spec == nil || json.Unmarshal(c.Spec.Value, &spec) != nil || spec.Process == nil {
					return fmt.Errorf("exec in %s: the container's spec has no process to start from: %w", c.ID, errdefs.ErrFailedPrecondition)
				}
				p := *spec.Process
				p.Args = args[1:]
				execTerminal(&p, tty, stdin, cmd.OutOrStdout())
				p.Env = append(append([]string(nil), p.Env...), env...)
				if workdir != "" {
					p.Cwd = workdir
				}
				if user != "" {
					// Names are looked up in the container's own files,
					// through its init process's root.
					sum, err := e.Inspect(ctx, c.ID)
					if err != nil {
						return err
					}
					if sum.State != engine.StateRunning {
						return fmt.Errorf("exec in %s: the container is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
					}
					u, err := oci.ResolveUser(ctx, fmt.Sprintf("/proc/%d/root", sum.Pid), user)
					if err != nil {
						return fmt.Errorf("exec in %s: %w", c.ID, err)
					}
					p.User = u
				}
				pb, err := json.Marshal(p)
				if err != nil {
					return err
				}
				b := make([]byte, 8)
				rand.Read(b)
				status, err := execProcess(serverCtx(ctx, a.namespace), e.Tasks(), a.logger, c.ID, "exec-"+hex.EncodeToString(b),
					&anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: pb},
					execIO{stdin: stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: tty})
				if err != nil {
					return err
				}
				exitCode = int(status)
				return nil
			})
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "pass stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "allocate a terminal: output and errors on it, our terminal raw with -i")
	cmd.Flags().StringVarP(&user, "user", "u", "", "user to run as: name, uid, name:group or uid:gid")
	cmd.Flags().StringVarP(&workdir, "workdir", "w", "", "working directory")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "KEY=VALUE added to the environment (repeatable)")
	return cmd
}

func serverCtx(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, namespaces.GRPCHeader, ns)
}
