// Command stratad is strata's daemon: it opens one store and serves it
// over containerd's gRPC API on a unix socket, so that every tool on the
// node (strata, ctr, nerdctl, BuildKit) shares it.
//
//	stratad [--config FILE] [--root DIR] [--state DIR] [--address SOCK] [--log-level L]
//	stratad config default
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/access"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/wiring"
)

// Config is /etc/strata/config.toml. Flags override it.
type Config struct {
	Root  string     `toml:"root" comment:"where blobs, metadata and snapshots live"`
	State string     `toml:"state" comment:"runtime state, lost on reboot: holds the socket unless grpc.address names another"`
	GRPC  GRPCConfig `toml:"grpc"`
	Log   LogConfig  `toml:"log"`
	// Snapshotter is the default snapshotter ("" = overlayfs where it works).
	Snapshotter string   `toml:"snapshotter" comment:"default snapshotter: overlayfs or native (empty: overlayfs where it works)"`
	GC          GCConfig `toml:"gc"`
	Registry    struct {
		ConfigPath string `toml:"config_path" comment:"directory of <host>/hosts.toml (containerd's certs.d format)"`
	} `toml:"registry"`
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads" comment:"layers downloaded at once per pull"`
	UnpackParallelism      int `toml:"unpack_parallelism" comment:"layers unpacked from the store at once (0: the number of CPUs, at least 2)"`
	// DiscardUnpackedLayers frees a pulled image's compressed layers once
	// they are unpacked (containerd's CRI discard_unpacked_layers).
	DiscardUnpackedLayers bool `toml:"discard_unpacked_layers" comment:"after a pull unpacks an image, free its compressed layer blobs (the snapshots stay; push and export fetch them again from the registry)"`
	// ContentSharingPolicy is containerd's metadata content_sharing_policy.
	ContentSharingPolicy string `toml:"content_sharing_policy" comment:"shared: a blob another namespace has is added to a namespace without its bytes being sent again; isolated: each namespace writes its blobs itself (but from namespaces labelled containerd.io/namespace.shareable=true)"`
	Metrics              struct {
		Address string `toml:"address" comment:"host:port serving Prometheus metrics at /metrics (empty: off)"`
	} `toml:"metrics"`
	CRI CRIConfig `toml:"cri"`
	// Runtime is what runs containers (the containers and tasks services).
	Runtime RuntimeConfig `toml:"runtime"`
	// Network is the containers' networks (network.Manager under the root),
	// which the daemon tears down when their tasks exit.
	Network NetworkConfig `toml:"network"`
	// ContainerLogs are the log rotation limits of the containers strata
	// runs, before their --log-opt; reported to the CLI in jobs.Info.
	ContainerLogs logs.Section `toml:"container_logs"`
}

// NetworkConfig is the containers' networks as the daemon sees them.
type NetworkConfig struct {
	Disabled      bool   `toml:"disabled" comment:"do not tear down the networks of containers whose task exits, nor at start those of containers no longer running"`
	DefaultBridge string `toml:"default_bridge" comment:"the default network's Linux bridge, as strata run uses it"`
	DefaultSubnet string `toml:"default_subnet" comment:"the default network's subnet, as strata run uses it"`
}

// RuntimeConfig configures running containers.
type RuntimeConfig struct {
	// AllowGroup lets the socket's group create, change and delete
	// containers and tasks (access.Policy): root-equivalent.
	AllowGroup bool `toml:"allow_group" comment:"let the socket's group (grpc.gid), not only root, create, update and delete containers and tasks: ROOT-EQUIVALENT, a container's spec is root on the host"`
}

// CRIConfig is the Kubernetes CRI image service, served on the socket.
type CRIConfig struct {
	Disabled                 bool     `toml:"disabled" comment:"do not serve the Kubernetes CRI (runtime.v1) on the socket"`
	SandboxImage             string   `toml:"sandbox_image" comment:"the pod sandbox (pause) image: pinned, never collected by kubelet"`
	PinnedImages             []string `toml:"pinned_images" comment:"more images kubelet's image GC must keep"`
	ImagePullProgressTimeout string   `toml:"image_pull_progress_timeout" comment:"a CRI pull moving less than image_pull_min_rate bytes/s for this long is cancelled"`
	ImagePullMinRate         int64    `toml:"image_pull_min_rate" comment:"bytes per second below which a CRI pull makes no progress"`
}

// GRPCConfig is the socket.
type GRPCConfig struct {
	Address        string `toml:"address" comment:"socket path (empty: strata.sock in the state directory)"`
	UID            int    `toml:"uid"`
	GID            int    `toml:"gid"`
	MaxRecvMsgSize int    `toml:"max_recv_message_size"`
	MaxSendMsgSize int    `toml:"max_send_message_size"`
}

// LogConfig is the daemon's logging.
type LogConfig struct {
	Level  string `toml:"level" comment:"debug, info, warn or error"`
	Format string `toml:"format" comment:"text or json"`
}

// GCConfig is the collection policy.
type GCConfig struct {
	ScheduleDelay string `toml:"schedule_delay" comment:"debounce between a deletion and the collection it schedules"`
	MinFree       string `toml:"min_free" comment:"free space each collection keeps on the content store's filesystem by dropping partial downloads, oldest first: bytes (2GiB) or a percentage (10%); empty: none"`
}

func defaultConfig() Config {
	c := Config{
		Root:                   "/var/lib/strata",
		State:                  "/run/strata",
		GRPC:                   GRPCConfig{MaxRecvMsgSize: 16 << 20, MaxSendMsgSize: 16 << 20},
		Log:                    LogConfig{Level: "info", Format: "text"},
		GC:                     GCConfig{ScheduleDelay: "100ms"},
		MaxConcurrentDownloads: 3,
		CRI:                    CRIConfig{SandboxImage: "registry.k8s.io/pause:3.10", ImagePullProgressTimeout: "5m", ImagePullMinRate: 1024},
		ContentSharingPolicy:   "shared",
		Network:                NetworkConfig{DefaultBridge: network.DefaultBridge, DefaultSubnet: network.DefaultSubnet.String()},
		ContainerLogs:          logs.DefaultSection(),
	}
	c.Registry.ConfigPath = "/etc/strata/certs.d"
	return c
}

// DefaultConfigPath is where stratad reads its configuration.
const DefaultConfigPath = "/etc/strata/config.toml"

func loadConfig(path string, explicit bool) (Config, error) {
	c := defaultConfig()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return c, fmt.Errorf("config %s: unknown settings:\n%s", path, sm.String())
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func version() (string, string) {
	ver, rev := "dev", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	return ver, rev
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		configPath string
		flags      Config
		root       = &cobra.Command{Use: "stratad", Short: "strata's daemon: the store over containerd's gRPC API", SilenceUsage: true, SilenceErrors: true}
	)
	root.Flags().StringVar(&configPath, "config", DefaultConfigPath, "configuration file")
	root.Flags().StringVar(&flags.Root, "root", "", "store root (overrides the config)")
	root.Flags().StringVar(&flags.State, "state", "", "state directory (overrides the config)")
	root.Flags().StringVarP(&flags.GRPC.Address, "address", "a", "", "socket path (overrides the config)")
	root.Flags().StringVar(&flags.Log.Level, "log-level", "", "log level (overrides the config)")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := loadConfig(configPath, cmd.Flags().Changed("config"))
		if err != nil {
			return err
		}
		if flags.Root != "" {
			cfg.Root = flags.Root
		}
		if flags.State != "" {
			cfg.State = flags.State
		}
		if flags.GRPC.Address != "" {
			cfg.GRPC.Address = flags.GRPC.Address
		}
		if flags.Log.Level != "" {
			cfg.Log.Level = flags.Log.Level
		}
		return serve(cfg)
	}
	root.AddCommand(&cobra.Command{
		Use:   "config default",
		Short: "Print every setting with its default",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "default" {
				return fmt.Errorf("unknown config verb %q (want default)", args[0])
			}
			b, err := toml.Marshal(defaultConfig())
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			return err
		},
	})
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "stratad:", err)
		return 1
	}
	return 0
}

func serve(cfg Config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", cfg.Log.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch cfg.Log.Format {
	case "json":
		log = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	case "text", "":
		log = slog.New(slog.NewTextHandler(os.Stderr, opts))
	default:
		return fmt.Errorf("log format %q: want text or json", cfg.Log.Format)
	}
	gcDelay, err := time.ParseDuration(cfg.GC.ScheduleDelay)
	if err != nil {
		return fmt.Errorf("gc.schedule_delay %q: %v", cfg.GC.ScheduleDelay, err)
	}
	minFree, err := metadata.ParseMinFree(cfg.GC.MinFree)
	if err != nil {
		return fmt.Errorf("gc.min_free: %w", err)
	}
	pullTimeout, err := time.ParseDuration(cfg.CRI.ImagePullProgressTimeout)
	if err != nil || pullTimeout <= 0 {
		return fmt.Errorf("cri.image_pull_progress_timeout %q: want a positive duration", cfg.CRI.ImagePullProgressTimeout)
	}
	if cfg.CRI.ImagePullMinRate < 0 {
		return fmt.Errorf("cri.image_pull_min_rate %d: want 0 or more bytes per second", cfg.CRI.ImagePullMinRate)
	}
	minRate := cfg.CRI.ImagePullMinRate
	if minRate == 0 {
		minRate = -1 // any byte is progress
	}
	logLimits, err := cfg.ContainerLogs.Limits()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	policy, err := metadata.ParseSharingPolicy(cfg.ContentSharingPolicy)
	if err != nil {
		return fmt.Errorf("content_sharing_policy: %w", err)
	}
	if cfg.State == "" {
		return fmt.Errorf("state directory must not be empty")
	}
	if err := os.MkdirAll(cfg.State, 0o711); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	sock := cfg.GRPC.Address
	if sock == "" {
		sock = filepath.Join(cfg.State, "strata.sock")
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o711); err != nil {
		return err
	}
	// Another daemon answering on the socket: refuse rather than steal it.
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("socket %s: another daemon is serving it", sock)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Opening the store takes its lock: a second daemon on the same root
	// fails here, naming the root.
	st, err := wiring.Open(ctx, wiring.Config{Root: cfg.Root, Logger: log, GCDelay: gcDelay, MinFree: minFree, Snapshotter: cfg.Snapshotter, Holder: "stratad",
		SharingPolicy: policy})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close the store", "error", err)
		}
	}()
	os.Remove(sock) // stale: nobody answered on it
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		return err
	}
	if cfg.GRPC.UID != 0 || cfg.GRPC.GID != 0 {
		if err := os.Chown(sock, cfg.GRPC.UID, cfg.GRPC.GID); err != nil {
			return err
		}
	}
	// The containers' networks: under the root, their runtime state
	// beside them (network.run), where strata run keeps them.
	var nets server.Networks
	if !cfg.Network.Disabled {
		subnet, err := netip.ParsePrefix(cfg.Network.DefaultSubnet)
		if err != nil {
			return fmt.Errorf("network.default_subnet %q: %w", cfg.Network.DefaultSubnet, err)
		}
		m, err := network.New(filepath.Join(cfg.Root, "network"), filepath.Join(cfg.Root, "network.run"),
			network.WithDefaultNetwork(cfg.Network.DefaultBridge, subnet), network.WithLogger(log.With("component", "network")))
		if err != nil {
			return err
		}
		nets = m
	}
	ver, rev := version()
	srv, err := server.New(st, server.Config{MaxRecvMsgSize: cfg.GRPC.MaxRecvMsgSize, MaxSendMsgSize: cfg.GRPC.MaxSendMsgSize,
		Logger: log, UUID: storeUUID(cfg.Root), Version: ver, Revision: rev,
		Jobs: jobs.Defaults{HostsDir: cfg.Registry.ConfigPath, MaxConcurrentDownloads: cfg.MaxConcurrentDownloads,
			UnpackParallelism: cfg.UnpackParallelism, DiscardUnpackedLayers: cfg.DiscardUnpackedLayers, Logs: logLimits},
		CRI: server.CRIConfig{Disabled: cfg.CRI.Disabled, SandboxImage: cfg.CRI.SandboxImage, PinnedImages: cfg.CRI.PinnedImages,
			PullProgressTimeout: pullTimeout, PullMinRate: minRate},
		Runtime: server.RuntimeConfig{State: filepath.Join(cfg.State, "runtime"), Address: sock, Debug: level <= slog.LevelDebug},
		Access:  access.Policy{AllowGroup: cfg.Runtime.AllowGroup},
		Network: nets})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	if addr := cfg.Metrics.Address; addr != "" {
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics address %s: %w", addr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		defer hs.Close()
		go func() {
			if err := hs.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
		log.Info("serving metrics", "address", ml.Addr().String())
	}
	log.Info("serving", "address", sock, "root", cfg.Root, "version", ver)
	sdNotify("READY=1")
	select {
	case <-ctx.Done():
		log.Info("stopping: draining calls")
		sdNotify("STOPPING=1")
		srv.Stop(10 * time.Second)
		os.Remove(sock)
		return nil
	case err := <-errc:
		return err
	}
}

// storeUUID is the store's identity, made once and kept in the root.
func storeUUID(root string) string {
	p := filepath.Join(root, "uuid")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b))
	}
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	os.WriteFile(p, []byte(id+"\n"), 0o644)
	return id
}

// sdNotify tells systemd about the daemon's state when it started us with
// Type=notify.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
