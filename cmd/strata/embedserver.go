package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/server"
)

// Containers in embedded mode: the engine always talks to the tasks
// service over gRPC, so here this process serves its own store on a
// private socket (server.New, the daemon's code) for as long as the
// command runs. The shims it starts are in their own process group and
// outlive the command; the next embedded command, or stratad on the same
// root and state, reconnects to them (runtime/v2 Load) from the bundles
// under the state directory. Choosing this over a daemon-only `run`
// keeps podman's model (no daemon needed) with one code path for both.

// embeddedState is the runtime state of embedded commands over root:
// stratad's default (/run/strata) for the default root, so that the two
// find each other's shims, and <root>/run for any other root.
func embeddedState(root string) string {
	if root == "/var/lib/strata" {
		return "/run/strata"
	}
	return filepath.Join(root, "run")
}

// serve starts the in-process server once and returns a connection to
// it; Close stops it.
func (e *embedded) serve(a *app) (*grpc.ClientConn, error) {
	if e.conn != nil {
		return e.conn, nil
	}
	state := embeddedState(e.s.Root)
	if err := os.MkdirAll(state, 0o711); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", state, err)
	}
	// Not strata.sock: a CLI finding that would take it for stratad's.
	// The root's lock says no other embedded command serves here.
	sock := filepath.Join(state, "cli.sock")
	os.Remove(sock)
	srv, err := server.New(e.s, server.Config{Logger: a.logger, Version: version, CRI: server.CRIConfig{Disabled: true},
		Runtime: server.RuntimeConfig{State: filepath.Join(state, "runtime"), Address: sock}})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		srv.Stop(0)
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	conn, err := client.Dial(sock)
	if err != nil {
		srv.Stop(0)
		<-done
		os.Remove(sock)
		return nil, err
	}
	e.srv, e.conn, e.sock, e.served = srv, conn, sock, done
	return conn, nil
}

// stopServing stops the in-process server, if any; the shims keep
// running.
func (e *embedded) stopServing() {
	if e.conn == nil {
		return
	}
	e.conn.Close()
	e.srv.Stop(5 * time.Second)
	<-e.served
	os.Remove(e.sock)
	e.conn, e.srv = nil, nil
}
