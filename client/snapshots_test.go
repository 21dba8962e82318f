package client_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/snapshottest"
	"github.com/strata-oci/strata/wiring"
)

// startNoGC serves a fresh store, as servertest.Start does, but without
// scheduled garbage collection: the suite's snapshots are referenced by
// nothing, and a collection that one of its Removes schedules would take
// them mid-case (the metadata suite runs with GC off too). It returns a
// connection to the daemon.
func startNoGC(t *testing.T) *grpc.ClientConn {
	t.Helper()
	root := t.TempDir()
	st, err := wiring.Open(context.Background(), wiring.Config{Root: filepath.Join(root, "store"), GCDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st.OverlayUnavailable != nil {
		st.Close()
		t.Fatalf("overlayfs unavailable under %s: %v", root, st.OverlayUnavailable)
	}
	srv, err := server.New(st, server.Config{Version: "test"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	// Socket paths are short; t.TempDir's may not be.
	sockDir, err := os.MkdirTemp("", "strata-sock")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "strata.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(sockDir)
		st.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	t.Cleanup(func() {
		if conn != nil {
			conn.Close()
		}
		srv.Stop(5 * time.Second)
		<-done
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if err := mount.UnmountUnder(root); err != nil {
			t.Error(err)
		}
		os.RemoveAll(sockDir)
	})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestSnapshotterConformance runs the snapshotter suite through the gRPC
// client against a daemon of its own per case (the suite wants a fresh,
// empty snapshotter each time), on overlayfs.
func TestSnapshotterConformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T, _ string) snapshots.Snapshotter {
		return client.NewSnapshotter(startNoGC(t), "overlayfs")
	})
}
