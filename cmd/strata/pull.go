package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/remotes/docker/credentials"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	plainHTTP bool
	user      string
	hostsDir  string
}

func (rf *registryFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&rf.plainHTTP, "plain-http", false, "talk plain HTTP to registries not configured in hosts.toml (localhost always may)")
	f.StringVarP(&rf.user, "user", "u", "", "registry credentials USER[:PASSWORD] (asked for on the terminal when missing)")
	f.StringVar(&rf.hostsDir, "hosts-dir", "", "directory of <host>/hosts.toml registry configuration, containerd's certs.d (default $STRATA_HOSTS_DIR, else /etc/strata/certs.d or /etc/containerd/certs.d; through stratad, its registry.config_path)")
}

// hostsDirEnv names the registry hosts directory, like --hosts-dir.
const hostsDirEnv = "STRATA_HOSTS_DIR"

func defaultHostsDir() string {
	if d := os.Getenv(hostsDirEnv); d != "" {
		return d
	}
	for _, d := range []string{"/etc/strata/certs.d", "/etc/containerd/certs.d"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
}

// registry is how a job reaches registries: the flags, and the
// credentials of the user running this command (--user for ref's
// registry, else docker's config.json), which the daemon asks for too.
// s runs the job: a daemon opens a hosts directory for root only.
func (a *app) registry(rf *registryFlags, ref reference.Reference, s backend) (jobs.Registry, jobs.Credentials, error) {
	// Unset, the job takes its runner's default: the daemon's
	// configuration, or defaultHostsDir here.
	hostsDir := rf.hostsDir
	if hostsDir == "" {
		hostsDir = os.Getenv(hostsDirEnv)
	}
	if hostsDir != "" && !s.OpensPaths() {
		if rf.hostsDir != "" {
			return jobs.Registry{}, nil, usagef("--hosts-dir: stratad opens paths for root only; pulls through it use its registry.config_path")
		}
		a.logger.Debug("$"+hostsDirEnv+" is not for the daemon: it opens paths for root only", "dir", hostsDir)
		hostsDir = ""
	}
	if hostsDir != "" {
		abs, err := filepath.Abs(hostsDir)
		if err != nil {
			return jobs.Registry{}, nil, err
		}
		hostsDir = abs
	}
	creds, err := a.credentials(rf, ref)
	if err != nil {
		return jobs.Registry{}, nil, err
	}
	return jobs.Registry{PlainHTTP: rf.plainHTTP, HostsDir: hostsDir}, creds, nil
}

// userAgent is what strata sends to registries.
func userAgent() string {
	ver, _ := buildVersion()
	return "strata/" + ver
}

// resolver builds the registry client for the registry of ref.
func (a *app) resolver(rf *registryFlags, ref reference.Reference) (*docker.Resolver, error) {
	creds, err := a.credentials(rf, ref)
	if err != nil {
		return nil, err
	}
	hostsDir := rf.hostsDir
	if hostsDir == "" {
		hostsDir = defaultHostsDir()
	}
	return docker.NewResolver(docker.Options{HostsDir: hostsDir, PlainHTTP: rf.plainHTTP, Logger: a.logger,
		UserAgent: userAgent(), Credentials: creds}), nil
}

// credentials answers for --user at ref's registry, else from docker's
// config.json and its helpers.
func (a *app) credentials(rf *registryFlags, ref reference.Reference) (jobs.Credentials, error) {
	store, err := credentials.Load(credentials.DefaultPath())
	if err != nil {
		return nil, err
	}
	user, secret := "", ""
	if rf.user != "" {
		var ok bool
		user, secret, ok = strings.Cut(rf.user, ":")
		if user == "" {
			return nil, usagef("--user %q: want USER[:PASSWORD]", rf.user)
		}
		if !ok {
			if secret, err = readPassword("Password for " + user + "@" + ref.Domain + ": "); err != nil {
				return nil, err
			}
		}
	}
	return func(ctx context.Context, host string) (string, string, error) {
		if user != "" && host == ref.Domain {
			return user, secret, nil
		}
		return store.Get(ctx, host)
	}, nil
}

// readPassword reads a line from the terminal without echo, or from stdin
// when it is not a terminal.
func readPassword(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(os.Stderr, prompt)
	noEcho := *t
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, t)
		fmt.Fprintln(os.Stderr)
	}()
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// parseReference parses an image reference given on the command line; a
// bad one is a usage error. Each argument is parsed once, here: what
// follows takes the parsed reference, and a job its normalised form
// (ref.String()), the one the pipeline records.
func parseReference(arg string) (reference.Reference, error) {
	ref, err := reference.Parse(arg)
	if err != nil {
		return reference.Reference{}, usageError{err}
	}
	return ref, nil
}

func parsePlatforms(ss []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, s := range ss {
		for _, part := range strings.Split(s, ",") {
			p, err := images.ParsePlatform(strings.TrimSpace(part))
			if err != nil {
				return nil, usageError{err}
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func newPullCommand(a *app) *cobra.Command {
	var (
		rf             registryFlags
		platforms      []string
		allPlatforms   bool
		unpackPlatform string
		snapshotter    string
		noUnpack       bool
		maxDownloads   int
		quiet          bool
		progressMode   = progress.Auto
	)
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Fetch an image from a registry and unpack it",
		Long: `Fetch an image from a registry into the store and unpack the host platform's
root filesystem into snapshots, ready to mount. The index, every manifest and
every config are always fetched; layers only for the platforms asked for.`,
		Example: `  strata pull alpine
  strata pull --platform linux/arm64 ghcr.io/org/app:1.2
  strata pull --plain-http 127.0.0.1:5000/app:latest`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseReference(args[0])
			if err != nil {
				return err
			}
			ps, err := parsePlatforms(platforms)
			if err != nil {
				return err
			}
			o := &jobs.PullRequest{Ref: ref.String(), Platforms: ps, AllPlatforms: allPlatforms, NoUnpack: noUnpack,
				Snapshotter: snapshotter, MaxConcurrentDownloads: maxDownloads}
			if unpackPlatform != "" {
				up, err := images.ParsePlatform(unpackPlatform)
				if err != nil {
					return usageError{err}
				}
				o.UnpackPlatform = &up
			}
			if cmd.Flags().Changed("max-concurrent-downloads") && maxDownloads < 1 {
				return usagef("--max-concurrent-downloads %d: want at least 1", maxDownloads)
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				reg, creds, err := a.registry(&rf, ref, s)
				if err != nil {
					return err
				}
				o.Registry = reg
				if snapshotter != "" && s.Snapshotter(snapshotter) == nil {
					return usagef("--snapshotter %q: not one of %s", snapshotter, strings.Join(s.Info().Snapshotters, ", "))
				}
				if quiet {
					progressMode = progress.Quiet
				}
				pr := progress.New(cmd.ErrOrStderr(), progressMode)
				res, err := s.Run(ctx, jobs.Request{Pull: o}, jobs.Env{Progress: pr, Credentials: creds, Logger: a.logger, UserAgent: userAgent()})
				pr.Close(err)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("pull %s interrupted: %w (nothing was recorded; run it again to resume, downloaded layers are kept)", ref, err)
					}
					return err
				}
				img := res.Images[0]
				if quiet {
					fmt.Fprintln(cmd.OutOrStdout(), img.Digest)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", img.Name, img.Digest)
				}
				return nil
			})
		},
	}
	rf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&platforms, "platform", nil, "fetch the layers of this platform (repeatable; default: the host's)")
	f.BoolVar(&allPlatforms, "all-platforms", false, "fetch the layers of every platform")
	f.StringVar(&unpackPlatform, "unpack-platform", "", "unpack this platform (default: the first --platform, or the host's)")
	f.StringVar(&snapshotter, "snapshotter", "", "snapshotter to unpack into (default: overlayfs where it works)")
	f.BoolVar(&noUnpack, "no-unpack", false, "fetch only; do not unpack")
	f.IntVar(&maxDownloads, "max-concurrent-downloads", 0, "layers downloaded at once (default 3; through stratad, its max_concurrent_downloads)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the image's digest")
	f.Var(&progressMode, "progress", "progress display: auto, tty, plain or quiet")
	return cmd
}

// registryHost turns a login argument (host, host:port, URL, docker.io
// aliases) into the registry host strata keys credentials by.
func registryHost(s string) (string, error) {
	h := strings.TrimSpace(s)
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "", "index.docker.io", "registry-1.docker.io":
		if h == "" && s != "" {
			return "", usagef("registry %q: want a host name", s)
		}
		h = "docker.io"
	}
	if strings.ContainsAny(h, " @") {
		return "", usagef("registry %q: want a host name", s)
	}
	return h, nil
}

func newLoginCommand(a *app) *cobra.Command {
	var (
		rf            registryFlags
		user          string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "login [REGISTRY]",
		Short: "Log in to a registry (credentials go to docker's config.json, mode 0600)",
		Long: `Check credentials against a registry and store them where docker, podman and
ctr find them: ~/.docker/config.json ($DOCKER_CONFIG), or its credsStore or
credHelpers helper. REGISTRY defaults to docker.io.`,
		Example: `  strata login -u alice registry.example.com
  echo "$TOKEN" | strata login -u bot --password-stdin ghcr.io`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%q takes at most one REGISTRY", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			host := "docker.io"
			if len(args) == 1 {
				var err error
				if host, err = registryHost(args[0]); err != nil {
					return err
				}
			}
			if user == "" {
				return usagef("--username is required")
			}
			var secret string
			var err error
			if passwordStdin {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				secret = strings.TrimRight(string(b), "\r\n")
			} else if secret, err = readPassword("Password: "); err != nil {
				return err
			}
			if secret == "" {
				return usagef("empty password")
			}
			ref := reference.Reference{Domain: host, Path: "library/strata-login-check", Tag: "latest"}
			rf.user = user + ":" + secret
			r, err := a.resolver(&rf, ref)
			if err != nil {
				return err
			}
			if err := r.CheckLogin(ctx, host); err != nil {
				return fmt.Errorf("login to %s as %s: %w", host, user, err)
			}
			store, err := credentials.Load(credentials.DefaultPath())
			if err != nil {
				return err
			}
			if err := store.Put(ctx, host, user, secret); err != nil {
				return err
			}
			if store.Helper(host) == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "strata: the password is stored unencrypted in %s (configure a credsStore helper to avoid it)\n", store.Path())
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&rf.plainHTTP, "plain-http", false, "talk plain HTTP to the registry")
	f.StringVar(&rf.hostsDir, "hosts-dir", "", "directory of <host>/hosts.toml registry configuration (default $STRATA_HOSTS_DIR, else /etc/strata/certs.d or /etc/containerd/certs.d)")
	f.StringVarP(&user, "username", "u", "", "user name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password (or token) from stdin")
	return cmd
}

func newLogoutCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Remove a registry's stored credentials",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%q takes at most one REGISTRY", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "docker.io"
			if len(args) == 1 {
				var err error
				if host, err = registryHost(args[0]); err != nil {
					return err
				}
			}
			store, err := credentials.Load(credentials.DefaultPath())
			if err != nil {
				return err
			}
			if err := store.Erase(a.ctx(cmd), host); err != nil {
				if errdefs.IsNotFound(err) {
					return fmt.Errorf("not logged in to %s: %w", host, err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed login credentials for %s\n", host)
			return nil
		},
	}
}
