// Command strata is the CLI of the strata image store. In embedded mode it
// opens the store root itself (one process at a time holds it).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
)

// usageError marks errors in how the command was called: exit code 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

type app struct {
	root      string
	address   string
	namespace string
	logLevel  string
	output    string
	// rootSet and addressSet: given on the command line, which decides
	// between embedded and client mode (backend.go).
	rootSet, addressSet bool
	// lockTimeout bounds the wait for a root another strata command holds
	// (0: no bound); command names the verb for those who wait on us.
	lockTimeout time.Duration
	command     string
	stderr      io.Writer

	logger *slog.Logger
	store  backend
}

func defaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/strata"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "strata")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "strata")
	}
	return "strata"
}

func (a *app) close() error {
	if a.store == nil {
		return nil
	}
	err := a.store.Close()
	a.store = nil
	return err
}

// ctx returns the command's context carrying the namespace.
func (a *app) ctx(cmd *cobra.Command) context.Context {
	return namespaces.WithNamespace(cmd.Context(), a.namespace)
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "strata is a container image store: content, images, leases and snapshots",
		Long: `strata keeps container images on a Linux host: a content-addressable blob
store, image records, leases and garbage collection, in containerd's model.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
			}
			a.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if a.output != "table" && a.output != "json" {
				return usagef("--output %q: want table or json", a.output)
			}
			if err := namespaces.Validate(a.namespace); err != nil {
				return usageError{err}
			}
			a.command = cmd.CommandPath()
			a.stderr = cmd.ErrOrStderr()
			if a.lockTimeout < 0 {
				return usagef("--lock-timeout %v: want a duration ≥ 0 (0: wait as long as it takes)", a.lockTimeout)
			}
			a.rootSet = cmd.Flags().Changed("root")
			a.addressSet = cmd.Flags().Changed("address")
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	f := root.PersistentFlags()
	f.StringVar(&a.root, "root", defaultRoot(), "store root directory, opened by this process (embedded mode)")
	f.StringVar(&a.address, "address", "", "the daemon's socket (env "+addressEnv+"; default "+DefaultAddress+" when stratad listens there, else embedded mode)")
	f.DurationVar(&a.lockTimeout, "lock-timeout", 0, "embedded mode: how long to wait while another strata command holds the store (0: as long as it takes)")
	f.StringVarP(&a.namespace, "namespace", "n", namespaces.FromEnv(), "namespace (env "+namespaces.EnvVar+")")
	f.StringVar(&a.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	// The whole tree, every noun and verb, is listed here: "where is
	// strata X Y" is one grep, and no file adds commands of its own
	// (noinit_test.go).
	snapshotsFlag, layerFlag := &snapshotterFlag{}, &snapshotterFlag{}
	snapshots := groupCommand("snapshots", []string{"snapshot", "s"}, "Manage snapshots: the directory trees that layers are unpacked into",
		snapshotsList(a, snapshotsFlag), snapshotsTree(a, snapshotsFlag), snapshotsInfo(a, snapshotsFlag), snapshotsUsage(a, snapshotsFlag),
		snapshotsPrepare(a, snapshotsFlag), snapshotsView(a, snapshotsFlag), snapshotsCommit(a, snapshotsFlag), snapshotsMounts(a, snapshotsFlag),
		snapshotsRemove(a, snapshotsFlag), snapshotsLabel(a, snapshotsFlag))
	snapshots.Long = snapshotsLong
	snapshotsFlag.register(snapshots)
	layer := groupCommand("layer", []string{"layers"}, "Apply layers to snapshots, and write snapshots as layers",
		layerApply(a, layerFlag), layerDiff(a, layerFlag))
	layerFlag.register(layer)
	root.AddCommand(
		groupCommand("namespaces", []string{"namespace", "ns"}, "Manage namespaces",
			namespacesCreate(a), namespacesList(a), namespacesRemove(a), namespacesLabel(a)),
		groupCommand("content", nil, "Manage blobs in the content store",
			contentList(a), contentGet(a), contentIngest(a), contentAbort(a), contentRemove(a), contentLabel(a), contentActive(a)),
		groupCommand("leases", []string{"lease"}, "Manage leases, which protect resources from garbage collection",
			leasesCreate(a), leasesList(a), leasesRemove(a)),
		groupCommand("containers", []string{"container", "c"}, "List, inspect and remove containers (created by ctr, nerdctl, BuildKit or the CRI)",
			containersList(a), containersInfo(a), containersRemove(a), containersPrune(a)), // containers.go, lifecycle.go
		newRunCommand(a),                                                                                                                    // run.go
		newPsCommand(a), newExecCommand(a), newStopCommand(a), newKillCommand(a), newStartCommand(a), newRmCommand(a), newInspectCommand(a), // lifecycle.go
		newStatsCommand(a), // stats.go
		groupCommand("tasks", []string{"task", "t"}, "List, inspect, signal and exec into the tasks (running containers) of the daemon",
			tasksList(a), tasksPs(a), tasksKill(a), tasksExec(a)),
		snapshots,
		layer,
		newGCCommand(a),
		newPullCommand(a),
		newPushCommand(a),
		newLoginCommand(a),
		newLogoutCommand(a),
		groupCommand("images", []string{"image", "i"}, "List, inspect, tag, remove, mount, import and export images",
			imagesList(a), imagesCheck(a), imagesInspect(a), imagesHistory(a), // images.go, imagescheck.go, imagesinspect.go
			imagesTag(a), imagesLabel(a), // imagestag.go
			imagesRemove(a), imagesPrune(a), imagesDiscardLayers(a), // imagesrm.go
			imagesMount(a), imagesUnmount(a), // imagesmount.go
			imagesImport(a), imagesExport(a)), // import.go, export.go
		newDuCommand(a),
		newFsckCommand(a),
		newVersionCommand(a),
		groupCommand("volume", []string{"volumes"}, "Manage named volumes: directories under the root that containers mount",
			volumeCreate(a), volumeList(a), volumeInspect(a), volumeRemove(a), volumePrune(a)), // volumes.go
		groupCommand("network", []string{"networks"}, "Manage container networks (CNI bridges)",
			networkCreate(a), networkList(a), networkInspect(a), networkRemove(a)), // networks.go
		newLogsCommand(a), newLoggerCommand(), // logs.go
		groupCommand("plugins", []string{"plugin"}, "Show the parts of strata, as ctr plugins shows a daemon's",
			pluginsList(a)),
	)
	return root
}

// exactArgs, minArgs: argument checks that fail as usage errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%q takes %d argument(s), got %d; see %q", cmd.CommandPath(), n, len(args), cmd.CommandPath()+" --help")
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%q needs at least %d argument(s), got %d; see %q", cmd.CommandPath(), n, len(args), cmd.CommandPath()+" --help")
		}
		return nil
	}
}

// parseLabels turns k=v arguments into a map; "k=" (or "k") maps k to "".
func parseLabels(args []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, arg := range args {
		k, v, _ := strings.Cut(arg, "=")
		if k == "" {
			return nil, usagef("label %q: want key=value", arg)
		}
		labels[k] = v
	}
	return labels, nil
}

// exitCode is set by commands that report a problem without an error (fsck).
var exitCode int

func run(args []string) int {
	a := &app{}
	root := newRootCommand(a)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels the command; a second one kills as usual.
	context.AfterFunc(ctx, stop)
	err := root.ExecuteContext(ctx)
	if cerr := a.close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		var st statusError
		if errors.As(err, &st) {
			return st.code
		}
		var ue usageError
		var se *filters.SyntaxError
		if errors.As(err, &ue) || errors.As(err, &se) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
			return 2
		}
		return 1
	}
	return exitCode
}

func main() { os.Exit(run(os.Args[1:])) }

// eachArg runs fn for every argument, printing each one done to stdout and
// each failure to stderr, and fails at the end if any did: one bad name does
// not stop the rest, as with rm(1).
func eachArg(cmd *cobra.Command, args []string, what string, fn func(string) error) error {
	failed := 0
	for _, arg := range args {
		if err := fn(arg); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "strata: %v\n", err)
			failed++
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), arg)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d %s", failed, len(args), what)
	}
	return nil
}

// groupCommand is a noun whose verbs are its subcommands; called alone or
// with an unknown verb it is a usage error.
func groupCommand(use string, aliases []string, short string, verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%q needs a subcommand; see %q", cmd.CommandPath(), cmd.CommandPath()+" --help")
			}
			return usagef("unknown subcommand %q for %q; see %q", args[0], cmd.CommandPath(), cmd.CommandPath()+" --help")
		},
	}
	cmd.AddCommand(verbs...)
	return cmd
}

// withLease returns ctx under lease id, or, when id is empty, under a new
// lease that expires in 24 hours (what ctr does), so that what a command
// writes outlives it without being kept for ever.
func withLease(ctx context.Context, s backend, id, createdBy string) (context.Context, error) {
	if id == "" {
		l, err := s.Leases().Create(ctx, leases.WithExpiration(24*time.Hour),
			leases.WithLabels(map[string]string{labels.CreatedBy: createdBy}))
		if err != nil {
			return nil, err
		}
		id = l.ID
	}
	return leases.WithLease(ctx, id), nil
}
