package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/logs"
)

// loggerGrace bounds how long the logger drains the container's streams
// after the shim's SIGTERM (the shim kills it after 12 s).
const loggerGrace = 10 * time.Second

// newLoggerCommand is the process the runc shim starts for a container
// created with logs.URI: `strata logger CONFIG` with the container's stdout
// and stderr as fds 3 and 4 and the ready pipe as fd 5 (containerd's
// binary logging). Hidden: people never run it.
func newLoggerCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "logger CONFIG",
		Short:  "Write a container's stdout and stderr into its json-file log (started by the shim)",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := logs.ParseConfig(args[0])
			if err != nil {
				return usageError{err}
			}
			for fd := 3; fd <= 5; fd++ {
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
					return usagef("logger: fd %d is not a pipe: fds 3, 4 and 5 are the shim's (containerd's binary logging)", fd)
				}
			}
			stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
			defer stdout.Close()
			defer stderr.Close()
			// The shim's SIGTERM comes once the streams are closed:
			// drain them still, within a bound.
			ctx, cancel := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer cancel()
			stop := context.AfterFunc(cmd.Context(), func() { time.AfterFunc(loggerGrace, cancel) })
			defer stop()
			return logs.Serve(ctx, cfg, stdout, stderr, ready)
		},
	}
}

// containerLogDir returns the log directory of a container of the
// command's namespace, which must exist.
func containerLogDir(ctx context.Context, s backend, namespace, id string) (string, error) {
	root, err := hostFilesRoot(s, "logs")
	if err != nil {
		return "", err
	}
	if _, err := s.Containers().Get(ctx, id); err != nil {
		return "", err
	}
	return logs.Dir(root, namespace, id)
}

func newLogsCommand(a *app) *cobra.Command {
	var (
		follow     bool
		tail       string
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [-t] CONTAINER",
		Short: "Show what a detached container wrote on stdout and stderr",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := -1
			if tail != "all" {
				var err error
				if n, err = strconv.Atoi(tail); err != nil || n < 0 {
					return usagef("--tail %q: want a count ≥ 0 or all", tail)
				}
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				dir, err := containerLogDir(ctx, s, a.namespace, args[0])
				if err != nil {
					return err
				}
				// No log yet (never started): nothing to show, as docker.
				if _, err := os.Stat(dir); os.IsNotExist(err) {
					return nil
				}
				stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
				return logs.Read(ctx, dir, logs.ReadOptions{Tail: n, Follow: follow}, func(e logs.Entry) error {
					var w io.Writer = stdout
					if e.Stream == "stderr" {
						w = stderr
					}
					if timestamps {
						if _, err := fmt.Fprint(w, e.Time.Format(time.RFC3339Nano), " "); err != nil {
							return err
						}
					}
					_, err := io.WriteString(w, e.Log)
					return err
				})
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing what the container writes, until its output ends")
	f.StringVar(&tail, "tail", "all", "print only the last N lines")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with its time")
	return cmd
}
