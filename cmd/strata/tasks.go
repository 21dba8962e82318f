package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/namespaces"
)

// tasks returns the daemon's tasks client and a call context carrying
// the namespace. Tasks run under the daemon: without one there are none
// to see (errdefs.ErrUnavailable).
func (a *app) tasks(cmd *cobra.Command) (tasksapi.TasksClient, context.Context, error) {
	ctx := a.ctx(cmd)
	s, err := a.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	r, ok := s.(*remote)
	if !ok {
		return nil, nil, fmt.Errorf("tasks run under stratad, and no daemon answers (--address or $%s): %w", addressEnv, errdefs.ErrUnavailable)
	}
	return tasksapi.NewTasksClient(r.conn), metadata.AppendToOutgoingContext(ctx, namespaces.GRPCHeader, a.namespace), nil
}

// TaskRunning tells containers rm whether a container's task has not
// exited (taskChecker).
func (r *remote) TaskRunning(ctx context.Context, id string) (bool, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return false, err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, namespaces.GRPCHeader, ns)
	resp, err := tasksapi.NewTasksClient(r.conn).Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		err = errgrpc.ToNative(err)
		if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrNotImplemented) {
			return false, nil // no task, or a daemon without a tasks service
		}
		return false, err
	}
	return resp.GetProcess().GetStatus() != tasktypes.Status_STOPPED, nil
}

func tasksList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List tasks: id, pid of the init process, status (filters: id, runtime, status)",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, err := a.tasks(cmd)
			if err != nil {
				return err
			}
			resp, err := c.List(ctx, &tasksapi.ListTasksRequest{Filter: strings.Join(args, ",")})
			if err != nil {
				return fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
			}
			out := cmd.OutOrStdout()
			switch {
			case a.output == "json":
				type row struct {
					ID         string `json:"id"`
					Pid        uint32 `json:"pid"`
					Status     string `json:"status"`
					ExitStatus uint32 `json:"exit_status,omitempty"`
				}
				rows := []row{}
				for _, p := range resp.Tasks {
					rows = append(rows, row{p.ContainerID, p.Pid, p.Status.String(), p.ExitStatus})
				}
				return printJSON(out, rows)
			case quiet:
				for _, p := range resp.Tasks {
					fmt.Fprintln(out, p.ContainerID)
				}
				return nil
			}
			t := newTable(out, "TASK", "PID", "STATUS")
			for _, p := range resp.Tasks {
				t.row(p.ContainerID, strconv.FormatUint(uint64(p.Pid), 10), p.Status.String())
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	return cmd
}

func tasksPs(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ps ID",
		Short: "List the processes of a task (host pids)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, err := a.tasks(cmd)
			if err != nil {
				return err
			}
			resp, err := c.ListPids(ctx, &tasksapi.ListPidsRequest{ContainerID: args[0]})
			if err != nil {
				return errgrpc.ToNative(err)
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				pids := []uint32{}
				for _, p := range resp.Processes {
					pids = append(pids, p.Pid)
				}
				return printJSON(out, pids)
			}
			t := newTable(out, "PID")
			for _, p := range resp.Processes {
				t.row(strconv.FormatUint(uint64(p.Pid), 10))
			}
			return t.flush()
		},
	}
}

// parseSignal reads SIGKILL, KILL or 9.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, usagef("signal %q: want a name (SIGTERM, KILL) or a number", s)
}

func tasksKill(a *app) *cobra.Command {
	var (
		signal, execID string
		all            bool
	)
	cmd := &cobra.Command{
		Use:   "kill [--signal SIG] ID...",
		Short: "Signal tasks (SIGTERM unless --signal says otherwise)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(signal)
			if err != nil {
				return err
			}
			c, ctx, err := a.tasks(cmd)
			if err != nil {
				return err
			}
			return eachArg(cmd, args, "tasks not signalled", func(id string) error {
				_, err := c.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, ExecID: execID, Signal: uint32(sig), All: all})
				return errgrpc.ToNative(err)
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "SIGTERM", "signal to send")
	cmd.Flags().StringVar(&execID, "exec-id", "", "signal this exec process instead of the init process")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the task")
	return cmd
}

func tasksExec(a *app) *cobra.Command {
	var (
		execID, cwd string
		env         []string
		tty         bool
	)
	cmd := &cobra.Command{
		Use:   "exec [--exec-id ID] TASK COMMAND [ARG...]",
		Short: "Run a command in a running task, with the task's user and environment, and exit with its status",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// As ctr's, a terminal takes our stdin, which must be one.
			var stdin io.Reader
			if tty {
				stdin = cmd.InOrStdin()
				if err := checkTTY(true, tty, stdin); err != nil {
					return err
				}
			}
			c, ctx, err := a.tasks(cmd)
			if err != nil {
				return err
			}
			s, err := a.open(a.ctx(cmd))
			if err != nil {
				return err
			}
			id := args[0]
			ctr, err := s.Containers().Get(a.ctx(cmd), id)
			if err != nil {
				return err
			}
			var spec specs.Spec
			if ctr.Spec == nil || json.Unmarshal(ctr.Spec.Value, &spec) != nil || spec.Process == nil {
				return fmt.Errorf("exec in %s: the container's spec has no process to start from: %w", id, errdefs.ErrFailedPrecondition)
			}
			p := *spec.Process
			p.Args = args[1:]
			execTerminal(&p, tty, stdin, cmd.OutOrStdout())
			p.Env = append(p.Env, env...)
			if cwd != "" {
				p.Cwd = cwd
			}
			pb, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if execID == "" {
				b := make([]byte, 8)
				rand.Read(b)
				execID = "strata-" + hex.EncodeToString(b)
			}
			status, err := execProcess(ctx, c, a.logger, id, execID, &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: pb},
				execIO{stdin: stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: tty})
			if err != nil {
				return err
			}
			exitCode = int(status)
			return nil
		},
	}
	// Flags after TASK are the command's own.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&execID, "exec-id", "", "id of the exec process (default: a random one)")
	cmd.Flags().StringVar(&cwd, "cwd", "", "working directory (default: the task's)")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "allocate a terminal, with our stdin (a terminal) as its input")
	cmd.Flags().StringArrayVar(&env, "env", nil, "KEY=VALUE added to the environment (repeatable)")
	return cmd
}

// execIO is an exec process's stdio: ours, through FIFOs.
type execIO struct {
	// stdin is nil for none.
	stdin          io.Reader
	stdout, stderr io.Writer
	// tty gives the process a terminal (its spec must say so too): its
	// output, stderr included, comes on stdout, as docker's.
	tty bool
}

// execProcess runs an exec process with its stdio through FIFOs copied
// to and from ours, waits for it, deletes it and returns its status.
// With a terminal, its size follows ours (ResizePty) while it runs.
func execProcess(ctx context.Context, c tasksapi.TasksClient, log *slog.Logger, id, execID string, spec *anypb.Any, stdio execIO) (uint32, error) {
	dir, err := os.MkdirTemp("", "strata-exec")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	paths := []string{filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")}
	outs := []io.Writer{stdio.stdout, stdio.stderr}
	if stdio.tty {
		paths, outs = paths[:1], outs[:1]
	}
	var copies fifoCopies
	for i, p := range paths {
		if err := copies.add(p, outs[i]); err != nil {
			return 0, fmt.Errorf("exec in %s: %w", id, err)
		}
	}
	req := &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: execID, Stdout: paths[0], Terminal: stdio.tty, Spec: spec}
	if !stdio.tty {
		req.Stderr = paths[1]
	}
	if stdio.stdin != nil {
		req.Stdin = filepath.Join(dir, "stdin")
		if err := unix.Mkfifo(req.Stdin, 0o600); err != nil {
			return 0, fmt.Errorf("exec in %s: %w", id, err)
		}
	}
	if stdio.tty {
		defer rawInput(stdio.stdin, log)()
	}
	if _, err := c.Exec(ctx, req); err != nil {
		copies.abandon()
		return 0, fmt.Errorf("exec in %s: %w", id, errgrpc.ToNative(err))
	}
	defer c.DeleteProcess(context.WithoutCancel(ctx), &tasksapi.DeleteProcessRequest{ContainerID: id, ExecID: execID})
	waited := make(chan struct{})
	var (
		w    *tasksapi.WaitResponse
		werr error
	)
	go func() {
		w, werr = c.Wait(ctx, &tasksapi.WaitRequest{ContainerID: id, ExecID: execID})
		close(waited)
	}()
	if _, err := c.Start(ctx, &tasksapi.StartRequest{ContainerID: id, ExecID: execID}); err != nil {
		copies.abandon()
		return 0, fmt.Errorf("exec in %s: start: %w", id, errgrpc.ToNative(err))
	}
	if stdio.tty {
		// The shim has the process's terminal once it has started it.
		defer followTerminal(ctx, stdio.stdin, stdio.stdout, log, func(ctx context.Context, width, height uint32) error {
			_, err := c.ResizePty(ctx, &tasksapi.ResizePtyRequest{ContainerID: id, ExecID: execID, Width: width, Height: height})
			if err != nil {
				return fmt.Errorf("exec %s in %s: resize terminal: %w", execID, id, errgrpc.ToNative(err))
			}
			return nil
		})()
	}
	if stdio.stdin != nil {
		defer feedStdin(req.Stdin, stdio.stdin, func() {
			c.CloseIO(context.WithoutCancel(ctx), &tasksapi.CloseIORequest{ContainerID: id, ExecID: execID, Stdin: true})
		})()
	}
	<-waited
	copies.wait()
	if werr != nil {
		return 0, fmt.Errorf("exec in %s: wait: %w", id, errgrpc.ToNative(werr))
	}
	return w.ExitStatus, nil
}
