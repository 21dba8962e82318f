// Package containerd runs containerd's own conformance suites for content
// stores and snapshotters (core/content/testsuite, core/snapshots/testsuite
// of github.com/containerd/containerd/v2) unchanged, through containerd's
// gRPC proxies, against a real stratad: overlayfs and native, the shared and
// the isolated content sharing policy. It is a module of its own so that
// strata's go.mod does not gain containerd's implementation (DESIGN.md); run
// it with `cd test/containerd && go test ./...` (make unit does).
package containerd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// stratadBin is the stratad built once for the whole run.
var stratadBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// STRATA_TEST_STRATAD runs the suites against another build (to see
	// them fail on an older strata, say).
	if bin := os.Getenv("STRATA_TEST_STRATAD"); bin != "" {
		stratadBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "stratad-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stratadBin = filepath.Join(dir, "stratad")
	// From the repository's own module: what `make build` builds.
	build := exec.Command("go", "build", "-o", stratadBin, "./cmd/stratad")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build stratad:", err)
		return 1
	}
	return m.Run()
}

// daemon is a stratad serving one test.
type daemon struct {
	conn *grpc.ClientConn
	stop func() error
}

// startStratad runs stratad on a fresh store under root with the given
// default snapshotter and content sharing policy, and connects to it. stop
// terminates it (SIGTERM, by PID) and waits: the store is closed, its
// mounts gone, when stop returns.
func startStratad(root, snapshotter, policy string) (*daemon, error) {
	sock := filepath.Join(root, "s.sock")
	cfg := filepath.Join(root, "stratad.toml")
	body := fmt.Sprintf("root = %q\nstate = %q\nsnapshotter = %q\n", filepath.Join(root, "store"), filepath.Join(root, "state"), snapshotter)
	if policy != "shared" { // the default: left out, older builds run too
		body += fmt.Sprintf("content_sharing_policy = %q\n", policy)
	}
	body += fmt.Sprintf("[grpc]\naddress = %q\n[log]\nlevel = \"warn\"\n", sock)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(root, "stratad.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(stratadBin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() error {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
		err := <-exited
		exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			log, _ := os.ReadFile(filepath.Join(root, "stratad.log"))
			return fmt.Errorf("stratad: %w\n%s", err, log)
		}
		return err
	}
	// Wait until it answers on the socket, or exits, or 30 s went by (a
	// daemon stuck before serving fails the test, not the whole run).
	deadline := time.After(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(root, "stratad.log"))
			return nil, fmt.Errorf("stratad exited before serving: %v\n%s", err, log)
		case <-deadline:
			cmd.Process.Kill() // stuck: SIGTERM might not be heard either
			<-exited
			log, _ := os.ReadFile(filepath.Join(root, "stratad.log"))
			return nil, fmt.Errorf("stratad did not serve on %s within 30 s\n%s", sock, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stop()
		return nil, err
	}
	return &daemon{conn: conn, stop: func() error {
		conn.Close()
		return stop()
	}}, nil
}

// requireRoot fails the test unless it runs as root: stratad's overlayfs
// snapshotter and the snapshot suite's mounts need it.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("containerd's suites mount snapshots: run as root")
	}
}
