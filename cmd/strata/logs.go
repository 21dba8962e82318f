package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	toml "github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/engine"
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

// stoppedCheck returns the function logs -f asks whether container id
// still runs. Through a daemon it asks the engine. Embedded, the store
// (and its lock) is let go while following, or every other strata command
// would wait: each question opens it again, at most once a second.
func (a *app) stoppedCheck(ctx context.Context, s backend, e *engine.Engine, id string) (func() bool, error) {
	stopped := func(e *engine.Engine) bool {
		sum, err := e.Inspect(ctx, id)
		// A container removed meanwhile runs no more either.
		return err != nil || sum.State != engine.StateRunning
	}
	if _, ok := s.(*embedded); !ok {
		return func() bool { return stopped(e) }, nil
	}
	if err := a.close(); err != nil {
		return nil, err
	}
	var last time.Time
	return func() bool {
		if time.Since(last) < time.Second {
			return false
		}
		last = time.Now()
		s, err := a.open(ctx)
		if err != nil {
			a.logger.Debug("open the store to see the container", "container", id, "error", err)
			return false
		}
		defer a.close()
		e, err := a.newEngine(s)
		if err != nil {
			return false
		}
		return stopped(e)
	}, nil
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
			return a.withEngine(cmd, func(ctx context.Context, s backend, e *engine.Engine) error {
				c, err := e.Resolve(ctx, args[0])
				if err != nil {
					return err
				}
				root, err := hostFilesRoot(s, "logs")
				if err != nil {
					return err
				}
				dir, err := logs.Dir(root, a.namespace, c.ID)
				if err != nil {
					return err
				}
				// No log yet (never started): nothing to show, as docker.
				if _, err := os.Stat(dir); os.IsNotExist(err) {
					return nil
				}
				opts := logs.ReadOptions{Tail: n, Follow: follow}
				if follow {
					// The logger marks the log done only when the task is
					// deleted; a follower also ends once the container has
					// exited and its log stays still.
					if opts.Stopped, err = a.stoppedCheck(ctx, s, e, c.ID); err != nil {
						return err
					}
				}
				stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
				return logs.Read(ctx, dir, opts, func(e logs.Entry) error {
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

// configEnv names stratad's configuration file, of which embedded mode
// reads the settings the CLI applies itself ([container_logs]); default
// DefaultConfigPath.
const configEnv = "STRATA_CONFIG"

// DefaultConfigPath is stratad's configuration file.
const DefaultConfigPath = "/etc/strata/config.toml"

// logLimits returns the log rotation limits of the containers run on s:
// through the daemon, the ones it reports (its [container_logs], read
// when it started); in embedded mode, where this process is the daemon,
// the [container_logs] section of the same file ($STRATA_CONFIG, else
// DefaultConfigPath when it exists). A bad value there is
// errdefs.ErrInvalidArgument naming the file and the key.
func logLimits(s backend) (logs.Limits, error) {
	if s.Address() != "" {
		if l := s.Info().Logs; l != nil {
			return *l, nil
		}
		return logs.DefaultLimits(), nil // a daemon that does not say
	}
	path, explicit := os.Getenv(configEnv), true
	if path == "" {
		path, explicit = DefaultConfigPath, false
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return logs.DefaultLimits(), nil
	}
	if err != nil {
		return logs.Limits{}, fmt.Errorf("config %s: %w", path, err)
	}
	// Only the section this process applies: the rest is the daemon's,
	// which checks it strictly.
	c := struct {
		Logs logs.Section `toml:"container_logs"`
	}{Logs: logs.DefaultSection()}
	if err := toml.Unmarshal(b, &c); err != nil {
		return logs.Limits{}, fmt.Errorf("config %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	l, err := c.Logs.Limits()
	if err != nil {
		return logs.Limits{}, fmt.Errorf("config %s: %w", path, err)
	}
	return l, nil
}
