// Package buildkit builds Dockerfiles with BuildKit's containerd worker
// (buildkitd and buildctl v0.35.0, which scripts/testtools.sh builds from
// the Go module proxy) against a real stratad, and checks the result in
// strata's store: the image complete, unpacked, and the files the build
// steps wrote in its layers. BuildKit is the client here: it pulls the base
// image through stratad's content, images and leases services, unpacks it
// through the snapshots and diff services, runs RUN steps through the
// containers and tasks services, and stores what it built through all of
// them. Nothing is downloaded: the base image is Debian's static busybox,
// pushed by the test to a registry on 127.0.0.1.
package buildkit

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/testutil"
)

const (
	buildkitVersion = "v0.35.0"
	// namespace is the containerd worker's default, where BuildKit keeps
	// what it pulls and builds.
	namespace = "buildkit"
)

// stratadBin is the stratad built once for the whole run.
var stratadBin string

func TestMain(m *testing.M) {
	// STRATA_TEST_STRATAD runs the suite against another build (to see
	// it fail on an older strata, say).
	os.Exit(testutil.RunWithStratad(m, filepath.Join("..", ".."), &stratadBin))
}

// env is a stratad, a registry holding the busybox base image and a
// buildkitd whose only worker is containerd's, on stratad's socket.
type env struct {
	// snapshotter is stratad's default and BuildKit's: overlayfs or native.
	snapshotter string
	dir         string
	registry    *testutil.Registry
	base        string // the busybox image's reference
	conn        *grpc.ClientConn
	buildctl    string
	bkAddr      string
	sock        string // stratad's

	stopStratad, stopBuildkitd func()
}

func setup(t *testing.T) *env {
	t.Helper()
	return setupWith(t, "overlayfs")
}

// setupWith is setup with stratad's and BuildKit's snapshotter.
func setupWith(t *testing.T, snapshotter string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("stratad's overlayfs snapshots and BuildKit's mounts need root: run as root")
	}
	e := &env{dir: t.TempDir(), snapshotter: snapshotter}
	e.registry = testutil.StartRegistry(t, testutil.RegistryConfig{})
	e.base = testutil.PushBusybox(t, e.registry.Host, "busybox", "1")
	sock, stop := startStratad(t, e.dir, snapshotter)
	e.sock, e.stopStratad = sock, stop
	conn, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.conn = conn
	e.buildctl = testutil.Tool(t, "buildctl", buildkitVersion)
	e.bkAddr, e.stopBuildkitd = startBuildkitd(t, e.dir, sock, snapshotter, e.registry.Host, e.buildctl)
	return e
}

// startStratad runs stratad on the store under dir (made when new) and
// returns its socket and a function that stops it (SIGTERM, by PID), waits
// for it and fails the test if a shim or a mount of its is left; cleanup
// calls it too.
func startStratad(t *testing.T, dir, snapshotter string) (string, func()) {
	t.Helper()
	root := filepath.Join(dir, "stratad")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "s.sock")
	cfg := filepath.Join(root, "stratad.toml")
	body := fmt.Sprintf("root = %q\nstate = %q\nsnapshotter = %q\n[grpc]\naddress = %q\n[log]\nlevel = \"info\"\n",
		filepath.Join(root, "store"), filepath.Join(root, "state"), snapshotter, sock)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(root, "stratad.log")
	cmd := exec.Command(stratadBin, "--config", cfg)
	stop := startProcess(t, cmd, logPath)
	stopAndCheck := sync.OnceFunc(func() {
		if err := stop(); err != nil {
			t.Errorf("stop stratad: %v", err)
		}
		if t.Failed() {
			logTail(t, "stratad", logPath)
		}
		// Shims outlive stratad on purpose (a restart reconnects to them),
		// but a build leaves no task: no shim of this stratad's and no
		// mount of its may be left.
		for _, pid := range shimsOf(t, sock) {
			t.Errorf("shim pid %d of stratad's %s is left after the test: killed", pid, sock)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		left, err := mount.Under(root)
		if err != nil {
			t.Error(err)
			return
		}
		if len(left) > 0 {
			t.Errorf("stratad left mounts behind: %v", left)
			for _, p := range left {
				if err := mount.Unmount(p, syscall.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", p, err)
				}
			}
		}
	})
	t.Cleanup(stopAndCheck)
	waitFor(t, "stratad", logPath, cmd, func() error {
		c, err := client.Dial(sock)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = client.NewImageStore(c).List(namespaces.WithNamespace(context.Background(), "default"))
		return err
	})
	return sock, stopAndCheck
}

// shimsOf returns the PIDs of the processes started with -address sock:
// the runtime v2 shims of the stratad serving sock.
func shimsOf(t *testing.T, sock string) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == sock {
				pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if err == nil {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// startBuildkitd runs buildkitd with only the containerd worker, on
// stratad's socket, its state under dir, and returns its address and a
// function that stops it by PID and fails the test if it left a mount
// behind; cleanup calls it too.
func startBuildkitd(t *testing.T, dir, stratadSock, snapshotter, registryHost, buildctl string) (string, func()) {
	t.Helper()
	bin := testutil.Tool(t, "buildkitd", buildkitVersion)
	bkDir := filepath.Join(dir, "buildkit")
	// BuildKit mounts snapshots in temporary directories (COPY, the
	// exporter), under XDG_RUNTIME_DIR when set, else TMPDIR (containerd's
	// mount.WithTempMount): both keep them where the cleanup looks.
	tmp := filepath.Join(bkDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(bkDir, "buildkitd.toml")
	body := fmt.Sprintf(`[worker.oci]
  enabled = false
[worker.containerd]
  enabled = true
  address = %q
  namespace = %q
  snapshotter = %q
  gc = false
[registry.%q]
  http = true
  insecure = true
`, stratadSock, namespace, snapshotter, registryHost)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "unix://" + filepath.Join(bkDir, "bk.sock")
	logPath := filepath.Join(bkDir, "buildkitd.log")
	cmd := exec.Command(bin, "--config", cfg, "--root", filepath.Join(bkDir, "root"), "--addr", addr,
		"--oci-worker=false", "--containerd-worker=true", "--containerd-worker-addr", stratadSock,
		"--containerd-worker-net=host", "--debug")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_RUNTIME_DIR="+tmp)
	stop := startProcess(t, cmd, logPath)
	stopAndCheck := sync.OnceFunc(func() {
		// buildkitd ends with status 1 on SIGTERM ("got SIGTERM/SIGINT,
		// forcing shutdown" is the cause of its cancelled context).
		var ee *exec.ExitError
		if err := stop(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Errorf("stop buildkitd: %v", err)
		}
		if t.Failed() {
			logTail(t, "buildkitd", logPath)
		}
		left, err := mount.Under(bkDir)
		if err != nil {
			t.Error(err)
			return
		}
		if len(left) > 0 {
			t.Errorf("buildkitd left mounts behind: %v", left)
			for _, p := range left {
				if err := mount.Unmount(p, syscall.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", p, err)
				}
			}
		}
	})
	t.Cleanup(stopAndCheck)
	waitFor(t, "buildkitd", logPath, cmd, func() error {
		out, err := exec.Command(buildctl, "--addr", addr, "debug", "workers").CombinedOutput()
		if err != nil {
			return fmt.Errorf("buildctl debug workers: %w: %s", err, out)
		}
		// A header line, then one per worker.
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) < 2 {
			return fmt.Errorf("buildctl debug workers lists no worker yet: %s", out)
		}
		return nil
	})
	return addr, stopAndCheck
}

// startProcess starts cmd with its output in logPath and returns a stop
// function: SIGTERM by PID, then SIGKILL if it has not exited after a
// minute (a hang guard, not a timed assertion), and wait.
func startProcess(t *testing.T, cmd *exec.Cmd, logPath string) func() error {
	t.Helper()
	// Appended to: a process started again on the same directory adds
	// to the log of the one before.
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	var stopped bool
	var stopErr error
	return func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			stopErr = err
			return err
		}
		select {
		case err := <-exited:
			stopErr = err
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			stopErr = fmt.Errorf("%s did not exit within a minute of SIGTERM: killed", filepath.Base(cmd.Path))
		}
		return stopErr
	}
}

// waitFor polls ready until it succeeds, failing the test if the process
// exits first or nothing answers within two minutes (a hang guard).
func waitFor(t *testing.T, name, logPath string, cmd *exec.Cmd, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := ready()
		if err == nil {
			return
		}
		if cmd.ProcessState != nil || (cmd.Process != nil && cmd.Process.Signal(syscall.Signal(0)) != nil) {
			logTail(t, name, logPath)
			t.Fatalf("%s exited before serving: %v", name, err)
		}
		if time.Now().After(deadline) {
			logTail(t, name, logPath)
			t.Fatalf("%s did not serve within two minutes: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logTail(t *testing.T, name, path string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	if len(b) > 16000 {
		b = b[len(b)-16000:]
	}
	t.Logf("%s log (%s):\n%s", name, path, b)
}

// build runs buildctl build of a Dockerfile with a context holding files,
// storing the result in stratad's store as name (unpacked).
func (e *env) build(t *testing.T, name, dockerfile string, files map[string]string) {
	t.Helper()
	e.buildctlBuild(t, dockerfile, files, "--output", "type=image,name="+name+",unpack=true")
}

// buildctlBuild runs buildctl build of a Dockerfile with a context holding
// files and the extra arguments (outputs, caches), and returns its output.
func (e *env) buildctlBuild(t *testing.T, dockerfile string, files map[string]string, args ...string) string {
	t.Helper()
	out, err := e.tryBuild(t, dockerfile, files, args...)
	if err != nil {
		t.Fatalf("buildctl build %v: %v\n%s", args, err, out)
	}
	t.Logf("buildctl build %v:\n%s", args, out)
	return out
}

// tryBuild is buildctlBuild that returns buildctl's failure.
func (e *env) tryBuild(t *testing.T, dockerfile string, files map[string]string, args ...string) (string, error) {
	t.Helper()
	ctxDir := filepath.Join(t.TempDir(), "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.buildctl, append([]string{"--addr", e.bkAddr, "build", "--progress", "plain",
		"--frontend", "dockerfile.v0", "--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// built is what the store holds of an image BuildKit built.
type built struct {
	target ocispec.Descriptor
	config ocispec.Image
	// layers are the manifest's layers, each read as name → content
	// (directories as "dir/", symlinks as "-> target").
	layers []map[string]string
}

// check asserts that name is in stratad's store, complete (images.Check),
// unpacked (the committed snapshot of its chain ID exists), and returns it
// with its layers read.
func (e *env) check(t *testing.T, name string) built {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	img, err := client.NewImageStore(e.conn).Get(ctx, name)
	if err != nil {
		t.Fatalf("image %s after the build: %v", name, err)
	}
	cs := client.NewContentStore(e.conn)
	statuses, err := images.Check(ctx, cs, nil, img.Target)
	if err != nil {
		t.Fatalf("Check(%s) = %v", name, err)
	}
	if len(statuses) != 1 {
		t.Fatalf("Check(%s) found %d platforms, want 1: %+v", name, len(statuses), statuses)
	}
	if st := statuses[0]; !st.Complete() || len(st.Missing) > 0 {
		t.Fatalf("Check(%s) = %d of %d blobs, missing %v: want complete", name, st.Present, st.Needed, st.Missing)
	}
	manifest, err := images.ReadManifest(ctx, cs, statuses[0].Manifest)
	if err != nil {
		t.Fatalf("manifest of %s: %v", name, err)
	}
	var b built
	b.target = img.Target
	cb, err := content.ReadBlob(ctx, cs, manifest.Config, 1<<20)
	if err != nil {
		t.Fatalf("config of %s: %v", name, err)
	}
	if err := json.Unmarshal(cb, &b.config); err != nil {
		t.Fatalf("config of %s: %v", name, err)
	}
	if len(b.config.RootFS.DiffIDs) != len(manifest.Layers) {
		t.Fatalf("%s: config lists %d diff IDs for %d layers", name, len(b.config.RootFS.DiffIDs), len(manifest.Layers))
	}
	chainID := identity.ChainID(b.config.RootFS.DiffIDs)
	info, err := client.NewSnapshotter(e.conn, e.snapshotter).Stat(ctx, chainID.String())
	if err != nil {
		t.Fatalf("%s is not unpacked: snapshot %s: %v", name, chainID, err)
	}
	if info.Kind != snapshots.KindCommitted {
		t.Fatalf("snapshot %s of %s is %v, want committed", chainID, name, info.Kind)
	}
	for _, l := range manifest.Layers {
		b.layers = append(b.layers, readLayer(ctx, t, cs, l))
	}
	return b
}

func readLayer(ctx context.Context, t *testing.T, p content.Provider, desc ocispec.Descriptor) map[string]string {
	t.Helper()
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatalf("layer %s: %v", desc.Digest, err)
	}
	defer ra.Close()
	rc, _, err := archive.DecompressStream(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatalf("layer %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("layer %s: %v", desc.Digest, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeDir:
			out[strings.TrimSuffix(name, "/")+"/"] = ""
		case tar.TypeSymlink:
			out[name] = "-> " + h.Linkname
		default:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("layer %s: %s: %v", desc.Digest, name, err)
			}
			out[name] = string(data)
		}
	}
}

// TestCopy builds FROM the registry's busybox and COPY, and pushes the
// result: no container runs, so it exercises the content, images, leases,
// snapshots, diff and introspection services with BuildKit as the client.
func TestCopy(t *testing.T) {
	e := setup(t)
	name := e.registry.Host + "/built:copy"
	// push=true: BuildKit also pushes what it stored, reading the blobs
	// back from stratad's content store.
	e.buildctlBuild(t, "FROM "+e.base+"\nCOPY hello.txt /hello.txt\n", map[string]string{"hello.txt": "hello from the context\n"},
		"--output", "type=image,name="+name+",unpack=true,push=true")
	b := e.check(t, name)
	if len(b.layers) != 2 {
		t.Fatalf("%s has %d layers, want busybox's and COPY's", name, len(b.layers))
	}
	if _, pushed := testutil.FetchManifest(t, e.registry.Host, "built", "copy"); pushed != b.target.Digest.String() {
		t.Errorf("the registry has %s as built:copy, stratad's store %s", pushed, b.target.Digest)
	}
	if got := b.layers[0]["bin/sh"]; got != "-> /bin/busybox" {
		t.Errorf("base layer bin/sh = %q, want -> /bin/busybox", got)
	}
	if got := b.layers[1]["hello.txt"]; got != "hello from the context\n" {
		t.Errorf("top layer hello.txt = %q (layer: %v)", got, keys(b.layers[1]))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRun builds FROM, COPY and RUN: BuildKit runs the RUN step as a
// container and a task of stratad's (runc under containerd's shim), on a
// snapshot of stratad's, and commits what it wrote as a layer.
func TestRun(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) { testRun(t, sn) })
	}
}

func testRun(t *testing.T, snapshotter string) {
	e := setupWith(t, snapshotter)
	name := e.registry.Host + "/built:run"
	dockerfile := "FROM " + e.base + "\n" +
		"COPY hello.txt /hello.txt\n" +
		"RUN cat /hello.txt > /ran.txt && echo \"ran as $(id -u) in $(pwd)\" >> /ran.txt\n"
	e.build(t, name, dockerfile, map[string]string{"hello.txt": "hello from the context\n"})
	b := e.check(t, name)
	if len(b.layers) != 3 {
		t.Fatalf("%s has %d layers, want busybox's, COPY's and RUN's", name, len(b.layers))
	}
	if got := b.layers[1]["hello.txt"]; got != "hello from the context\n" {
		t.Errorf("COPY's layer hello.txt = %q (layer: %v)", got, keys(b.layers[1]))
	}
	if got, want := b.layers[2]["ran.txt"], "hello from the context\nran as 0 in /\n"; got != want {
		t.Errorf("RUN's layer ran.txt = %q, want %q (layer: %v)", got, want, keys(b.layers[2]))
	}
	// BuildKit removes the containers it ran; stratad must have let it.
	e.noContainers(t)
}

// empty fails the test if BuildKit's namespace holds a snapshot or a blob.
func (e *env) empty(t *testing.T) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	err := client.NewSnapshotter(e.conn, e.snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		t.Errorf("snapshot %s (%v, parent %q) is left after a prune of everything", info.Name, info.Kind, info.Parent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = client.NewContentStore(e.conn).Walk(ctx, func(info content.Info) error {
		t.Errorf("blob %s (%d bytes, labels %v) is left after a prune of everything", info.Digest, info.Size, info.Labels)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// noContainers fails the test if BuildKit's namespace still has a
// container (and so a task, a shim, a bundle) after a build.
func (e *env) noContainers(t *testing.T) {
	t.Helper()
	ctx := grpcmd.AppendToOutgoingContext(context.Background(), "containerd-namespace", namespace)
	resp, err := containersapi.NewContainersClient(e.conn).List(ctx, &containersapi.ListContainersRequest{})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	for _, c := range resp.Containers {
		t.Errorf("container %s is left after the build (runtime %s, snapshot %s)", c.ID, c.Runtime.GetName(), c.SnapshotKey)
	}
	tasks, err := tasksapi.NewTasksClient(e.conn).List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		t.Fatalf("list tasks: %v", err)
	}
	for _, p := range tasks.Tasks {
		t.Errorf("task %s (pid %d, %v) is left after the build", p.ID, p.Pid, p.Status)
	}
}

// TestRunFails builds a RUN step whose command fails: buildctl reports the
// command's exit status, which came from the shim through stratad's tasks
// service, and BuildKit's container, task, shim and mounts are gone.
func TestRunFails(t *testing.T) {
	e := setup(t)
	out, err := e.tryBuild(t, "FROM "+e.base+"\nRUN echo before the failure && exit 3\n", nil,
		"--output", "type=image,name="+e.registry.Host+"/built:fails")
	if err == nil {
		t.Fatalf("buildctl build of RUN exit 3 succeeded:\n%s", out)
	}
	t.Logf("buildctl build:\n%s", out)
	if !strings.Contains(out, "exit code: 3") || !strings.Contains(out, "before the failure") {
		t.Errorf("buildctl build of RUN exit 3 = %v, want the step's output and exit code: 3:\n%s", err, out)
	}
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	if _, err := client.NewImageStore(e.conn).Get(ctx, e.registry.Host+"/built:fails"); err == nil {
		t.Errorf("a failed build stored an image")
	}
	e.noContainers(t)
}

// TestOCIOutputAndCache exports a build as an OCI layout tar and its cache
// to a directory and to the registry, all read from stratad's content
// store; prunes
// BuildKit's cache (its leases and snapshots in stratad go); then builds
// again from each imported cache, whose blobs BuildKit writes into
// stratad's content store and unpacks there: the RUN step is not run
// again, and the layer it wrote the first time comes back.
func TestOCIOutputAndCache(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	dockerfile := "FROM " + e.base + "\n" +
		"COPY hello.txt /hello.txt\n" +
		"RUN cat /proc/sys/kernel/random/uuid > /stamp\n"
	files := map[string]string{"hello.txt": "hello from the context\n"}

	first := filepath.Join(dir, "first.tar")
	regCache := e.registry.Host + "/cache:1"
	e.buildctlBuild(t, dockerfile, files, "--output", "type=oci,dest="+first,
		"--export-cache", "type=local,mode=max,dest="+cache, "--export-cache", "type=registry,mode=max,ref="+regCache)
	layers := readOCILayout(t, first)
	stamp := layers[len(layers)-1]["stamp"]
	if len(stamp) != 37 {
		t.Fatalf("RUN's layer stamp = %q, want a UUID (layer: %v)", stamp, keys(layers[len(layers)-1]))
	}

	e.pruneAll(t)

	second := filepath.Join(dir, "second.tar")
	log := e.buildctlBuild(t, dockerfile, files, "--output", "type=oci,dest="+second, "--import-cache", "type=local,src="+cache)
	layers = readOCILayout(t, second)
	if got := layers[len(layers)-1]["stamp"]; got != stamp {
		t.Errorf("RUN's layer from the imported cache: stamp = %q, want the first build's %q", got, stamp)
	}
	if !strings.Contains(log, "CACHED") {
		t.Errorf("the second build ran every step again: the imported cache was not used")
	}

	// The same from the cache BuildKit pushed to the registry.
	e.pruneAll(t)
	third := filepath.Join(dir, "third.tar")
	log = e.buildctlBuild(t, dockerfile, files, "--output", "type=oci,dest="+third, "--import-cache", "type=registry,ref="+regCache)
	layers = readOCILayout(t, third)
	if got := layers[len(layers)-1]["stamp"]; got != stamp {
		t.Errorf("RUN's layer from the registry cache: stamp = %q, want the first build's %q", got, stamp)
	}
	if !strings.Contains(log, "CACHED") {
		t.Errorf("the third build ran every step again: the registry cache was not used")
	}
	e.noContainers(t)
}

// pruneAll runs buildctl prune --all and checks that nothing of BuildKit's
// namespace is left in stratad: BuildKit ends a prune with a lease deleted
// synchronously, so stratad's collection has run, and with no image and
// no cache record left nothing holds a snapshot or a blob.
func (e *env) pruneAll(t *testing.T) {
	t.Helper()
	out, err := exec.Command(e.buildctl, "--addr", e.bkAddr, "prune", "--all").CombinedOutput()
	if err != nil {
		t.Fatalf("buildctl prune --all: %v\n%s", err, out)
	}
	t.Logf("buildctl prune --all:\n%s", out)
	e.empty(t)
}

// readOCILayout extracts an OCI image layout tar, verifies every blob
// against its name, checks that the one image it lists is complete, and
// returns its layers read.
func readOCILayout(t *testing.T, tarPath string) []map[string]string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", tarPath, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf %s: %v\n%s", tarPath, err, out)
	}
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("%s holds no blobs (%v)", tarPath, err)
	}
	for _, b := range blobs {
		f, err := os.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		d, err := digest.SHA256.FromReader(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.Encoded() != filepath.Base(b) {
			t.Fatalf("%s: blob %s has digest %s", tarPath, filepath.Base(b), d)
		}
	}
	var idx ocispec.Index
	ib, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ib, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("%s: index.json = %s (%v), want one image", tarPath, ib, err)
	}
	// The layout's blobs/sha256/<hex> is a content store's layout.
	cs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	statuses, err := images.Check(ctx, cs, nil, idx.Manifests[0])
	if err != nil {
		t.Fatalf("Check(%s) = %v", tarPath, err)
	}
	if len(statuses) != 1 || !statuses[0].Complete() {
		t.Fatalf("Check(%s) = %+v, want one complete platform", tarPath, statuses)
	}
	m, err := images.ReadManifest(ctx, cs, statuses[0].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var layers []map[string]string
	for _, l := range m.Layers {
		layers = append(layers, readLayer(ctx, t, cs, l))
	}
	return layers
}

// TestCancelledRun kills buildctl while a RUN step runs: BuildKit cancels
// the build, kills the task through stratad and deletes its container;
// stratad must end with no container, task, shim or mount of the build.
func TestCancelledRun(t *testing.T) {
	e := setup(t)
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+e.base+"\nRUN sleep 3600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.buildctl, "--addr", e.bkAddr, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context="+ctxDir, "--local", "dockerfile="+ctxDir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		exited <- nil
	})

	ctx := grpcmd.AppendToOutgoingContext(context.Background(), "containerd-namespace", namespace)
	tasks := tasksapi.NewTasksClient(e.conn)
	until(t, "the RUN step's task runs", func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Errorf("buildctl exited before its RUN step ran: %v\n%s", err, out.String())
		default:
		}
		resp, err := tasks.List(ctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			return false, err
		}
		for _, p := range resp.Tasks {
			if p.Status == tasktypes.Status_RUNNING {
				return true, nil
			}
		}
		return false, nil
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	until(t, "BuildKit removes the cancelled step's container", func() (bool, error) {
		resp, err := containersapi.NewContainersClient(e.conn).List(ctx, &containersapi.ListContainersRequest{})
		return err == nil && len(resp.Containers) == 0, err
	})
	e.noContainers(t)
}

// until polls cond until it holds, failing the test on its error or when
// it has not held for two minutes (a hang guard, not a timed assertion).
func until(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited two minutes in vain until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunChanges builds a two-stage Dockerfile whose RUN step removes a
// file and a directory of lower layers, recreates the directory, and makes
// a hard link, a symlink and a private file: stratad's diff service turns
// the step's snapshot into a layer (whiteouts, an opaque directory or its
// entries' whiteouts, one inode for both links) and the unpacked image is
// the tree the step left, on both snapshotters.
func TestRunChanges(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) { testRunChanges(t, sn) })
	}
}

func testRunChanges(t *testing.T, snapshotter string) {
	e := setupWith(t, snapshotter)
	name := e.registry.Host + "/built:changes"
	dockerfile := "FROM " + e.base + " AS tool\n" +
		"RUN mkdir /out && echo from the first stage > /out/made.txt\n" +
		"FROM " + e.base + "\n" +
		"COPY hello.txt /hello.txt\n" +
		"COPY --from=tool /out/made.txt /made.txt\n" +
		"RUN rm /hello.txt && rm -rf /usr/bin && mkdir /usr/bin && echo new > /usr/bin/x && " +
		"mkdir /d && echo x > /d/f && ln /d/f /d/hl && ln -s f /d/sl && chmod 0600 /d/f\n"
	e.build(t, name, dockerfile, map[string]string{"hello.txt": "hello from the context\n"})
	b := e.check(t, name)
	if len(b.layers) != 4 {
		t.Fatalf("%s has %d layers, want busybox's, two COPYs' and RUN's", name, len(b.layers))
	}
	if _, ok := b.layers[3][".wh.hello.txt"]; !ok {
		t.Errorf("RUN's layer has no whiteout of hello.txt: %v", keys(b.layers[3]))
	}

	ctx := namespaces.WithNamespace(context.Background(), namespace)
	// The view is held by a lease: an unreferenced snapshot is the next
	// collection's, and BuildKit's own work schedules collections.
	lm := client.NewLeaseManager(e.conn)
	l, err := lm.Create(ctx, leases.WithID("test-view-"+name), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lm.Delete(ctx, l); err != nil {
			t.Errorf("delete the view's lease: %v", err)
		}
	}()
	ctx = leases.WithLease(ctx, l.ID)
	sn := client.NewSnapshotter(e.conn, e.snapshotter)
	chainID := identity.ChainID(b.config.RootFS.DiffIDs).String()
	mounts, err := sn.View(ctx, "test-view", chainID)
	if err != nil {
		t.Fatalf("View(%s) = %v", chainID, err)
	}
	defer func() {
		if err := sn.Remove(ctx, "test-view"); err != nil {
			t.Errorf("remove the view: %v", err)
		}
	}()
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		for _, c := range []struct{ path, want string }{
			{"made.txt", "from the first stage\n"},
			{"usr/bin/x", "new\n"},
			{"d/f", "x\n"},
			{"d/hl", "x\n"},
		} {
			got, err := os.ReadFile(filepath.Join(root, c.path))
			if err != nil || string(got) != c.want {
				t.Errorf("unpacked %s: /%s = %q, %v; want %q", name, c.path, got, err, c.want)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "hello.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unpacked %s: /hello.txt, removed by RUN, is there (%v)", name, err)
		}
		if ents, err := os.ReadDir(filepath.Join(root, "usr/bin")); err != nil || len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("unpacked %s: /usr/bin holds %v (%v), want only x: RUN removed and recreated it", name, names, err)
		}
		var f, hl syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(root, "d/f"), &f); err != nil {
			return err
		}
		if err := syscall.Lstat(filepath.Join(root, "d/hl"), &hl); err != nil {
			return err
		}
		if f.Ino != hl.Ino || f.Nlink != 2 {
			t.Errorf("unpacked %s: /d/f (inode %d, %d links) and /d/hl (inode %d) are not one file with two links", name, f.Ino, f.Nlink, hl.Ino)
		}
		if f.Mode&0o7777 != 0o600 {
			t.Errorf("unpacked %s: /d/f mode %o, want 600", name, f.Mode&0o7777)
		}
		if target, err := os.Readlink(filepath.Join(root, "d/sl")); err != nil || target != "f" {
			t.Errorf("unpacked %s: /d/sl -> %q, %v; want -> f", name, target, err)
		}
		if target, err := os.Readlink(filepath.Join(root, "bin/sh")); err != nil || target != "/bin/busybox" {
			t.Errorf("unpacked %s: /bin/sh -> %q, %v; want the base layer's -> /bin/busybox", name, target, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.noContainers(t)
}

// TestCacheAcrossRestarts stops buildkitd and stratad after a build and
// starts both again on the same roots: BuildKit's cache records name
// stratad's leases, snapshots and blobs, which must all have survived, so
// the same build again runs nothing and gives the same RUN layer; the
// first image is still complete and unpacked.
func TestCacheAcrossRestarts(t *testing.T) {
	e := setup(t)
	dockerfile := "FROM " + e.base + "\n" +
		"COPY hello.txt /hello.txt\n" +
		"RUN cat /proc/sys/kernel/random/uuid > /stamp\n"
	files := map[string]string{"hello.txt": "hello from the context\n"}
	first := e.registry.Host + "/built:first"
	e.build(t, first, dockerfile, files)
	stamp := e.check(t, first).layers[2]["stamp"]
	if len(stamp) != 37 {
		t.Fatalf("RUN's layer stamp = %q, want a UUID", stamp)
	}

	e.stopBuildkitd()
	e.stopStratad()
	e.sock, e.stopStratad = startStratad(t, e.dir, e.snapshotter)
	e.bkAddr, e.stopBuildkitd = startBuildkitd(t, e.dir, e.sock, e.snapshotter, e.registry.Host, e.buildctl)

	second := e.registry.Host + "/built:second"
	out := e.buildctlBuild(t, dockerfile, files, "--output", "type=image,name="+second+",unpack=true")
	if got := e.check(t, second).layers[2]["stamp"]; got != stamp {
		t.Errorf("after the restarts RUN's layer stamp = %q, want the first build's %q: the step ran again", got, stamp)
	}
	if !strings.Contains(out, "CACHED") {
		t.Errorf("after the restarts the build ran every step again")
	}
	e.check(t, first)
	e.noContainers(t)
}

// TestConcurrentBuilds runs three builds at once on one base, each with
// RUN steps and a cache mount: they pull the same base, unpack the same
// chain IDs, run tasks side by side and commit layers at once through
// stratad. Each image must come out complete and right; a second round
// finds what the first put in its cache mount.
func TestConcurrentBuilds(t *testing.T) {
	e := setup(t)
	const n = 3
	dockerfile := func(i, round int) string {
		return "FROM " + e.base + "\n" +
			fmt.Sprintf("RUN echo build %d > /id\n", i) +
			fmt.Sprintf("RUN --mount=type=cache,id=c%d,target=/cache echo round %d >> /cache/log && cp /cache/log /log\n", i, round)
	}
	for round := 1; round <= 2; round++ {
		errs := make(chan error, n)
		outs := make([]string, n)
		for i := range n {
			go func() {
				out, err := e.tryBuild(t, dockerfile(i, round), nil,
					"--output", fmt.Sprintf("type=image,name=%s/built:c%d-%d,unpack=true", e.registry.Host, i, round))
				outs[i] = out
				if err != nil {
					err = fmt.Errorf("build %d of round %d: %w\n%s", i, round, err, out)
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		for i := range n {
			name := fmt.Sprintf("%s/built:c%d-%d", e.registry.Host, i, round)
			b := e.check(t, name)
			if len(b.layers) != 3 {
				t.Fatalf("%s has %d layers, want 3", name, len(b.layers))
			}
			if got, want := b.layers[1]["id"], fmt.Sprintf("build %d\n", i); got != want {
				t.Errorf("%s: /id = %q, want %q", name, got, want)
			}
			want := "round 1\n"
			if round == 2 {
				want = "round 1\nround 2\n"
			}
			if got := b.layers[2]["log"]; got != want {
				t.Errorf("%s: /log (from the cache mount) = %q, want %q", name, got, want)
			}
		}
	}
	e.noContainers(t)
}

// TestCorruptBase builds FROM an image whose layer the registry serves
// with a byte changed (same size): BuildKit writes the bytes into
// stratad's content store, whose commit verifies them. The build fails
// naming the layer, stratad holds no blob under that digest, and no image
// is stored.
func TestCorruptBase(t *testing.T) {
	e := setup(t)
	body, _ := testutil.FetchManifest(t, e.registry.Host, "busybox", "1")
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("busybox manifest: %v: %s", err, body)
	}
	layer := m.Layers[0].Digest
	data := filepath.Join(e.registry.Dir, "data", "docker", "registry", "v2", "blobs", "sha256", layer.Encoded()[:2], layer.Encoded(), "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}

	name := e.registry.Host + "/built:corrupt"
	out, err := e.tryBuild(t, "FROM "+e.base+"\nRUN true\n", nil, "--output", "type=image,name="+name+",unpack=true")
	if err == nil {
		t.Fatalf("a build FROM a corrupt layer succeeded:\n%s", out)
	}
	t.Logf("buildctl build:\n%s", out)
	if !strings.Contains(out, layer.Encoded()) {
		t.Errorf("the failed build does not name the corrupt layer %s:\n%s", layer, out)
	}
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	if info, err := client.NewContentStore(e.conn).Info(ctx, layer); err == nil {
		t.Errorf("stratad stored the corrupt layer as %s: %+v", layer, info)
	}
	if _, err := client.NewImageStore(e.conn).Get(ctx, name); err == nil {
		t.Errorf("a failed build stored an image")
	}
	e.noContainers(t)
}
