// Package servertest runs strata's gRPC server in the test process, on a
// unix socket in a temporary directory, over a fresh store: what the real
// ctr client (and the gRPC conformance constructors) talk to in tests.
package servertest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/internal/testutil/storetest"
	"github.com/strata-oci/strata/internal/wiring"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server"
)

// Daemon is a server running for one test.
type Daemon struct {
	// Address is the socket path (for ctr -a).
	Address string
	Store   *wiring.Store
	Server  *server.Server
	// Conn is a client connection to it.
	Conn *grpc.ClientConn
}

// Start serves a fresh store on a new socket until the test ends.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return StartWith(t, server.Config{})
}

// StartTasks is Start with the tasks service: task bundles under the
// socket's temporary directory. The test must delete its tasks.
func StartTasks(t testing.TB) *Daemon {
	t.Helper()
	return StartWith(t, server.Config{Runtime: server.RuntimeConfig{State: "runtime"}})
}

// StartWith is Start with a server configuration (its UUID and Version
// are the tests' own).
func StartWith(t testing.TB, cfg server.Config) *Daemon {
	t.Helper()
	st, _ := storetest.Open(t)
	cfg.UUID, cfg.Version = "00000000-0000-4000-8000-000000000000", "test"
	dir, err := os.MkdirTemp("", "strata-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "strata.sock")
	if cfg.Runtime.State == "runtime" {
		cfg.Runtime = server.RuntimeConfig{State: filepath.Join(dir, "runtime"), Address: sock}
	}
	srv, err := server.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after storetest.Open's cleanup, so it runs first: the
	// server stops before the store closes.
	t.Cleanup(func() {
		conn.Close()
		srv.Stop(5 * time.Second)
		<-done
	})
	return &Daemon{Address: sock, Store: st, Server: srv, Conn: conn}
}

// Context returns ctx carrying namespace ns the way containerd's clients
// send it.
func Context(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, namespaces.GRPCHeader, ns)
}

// Ctr runs the real ctr client (Debian's containerd package) against d in
// namespace ns and returns its stdout; the test fails when ctr fails.
func (d *Daemon) Ctr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := d.CtrResult(ns, args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// CtrResult runs ctr and returns its combined output and error.
func (d *Daemon) CtrResult(ns string, args ...string) (string, error) {
	bin, err := exec.LookPath("ctr")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, append([]string{"-a", d.Address, "-n", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
