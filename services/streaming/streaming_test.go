package streaming_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"

	streamingapi "github.com/containerd/containerd/api/services/streaming/v1"
	transfertypes "github.com/containerd/containerd/api/types/transfer"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/services/streaming"
)

// TestStream opens a stream as containerd's clients do (StreamInit, wait
// for the acknowledgement), claims it once, talks both ways, and ends it:
// the client sees EOF.
func TestStream(t *testing.T) {
	m := streaming.NewManager()
	srv := grpc.NewServer()
	streamingapi.RegisterStreamingServer(srv, streaming.NewService(m))
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()

	if _, err := m.Get(ctx, "progress-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get before the client opened it = %v, want not found", err)
	}
	cs, err := streamingapi.NewStreamingClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	init, _ := streaming.Marshal(&streamingapi.StreamInit{ID: "progress-1"})
	if err := cs.Send(init); err != nil {
		t.Fatal(err)
	}
	ack, err := cs.Recv()
	if err != nil || streaming.Unmarshal(ack, &emptypb.Empty{}) != nil {
		t.Fatalf("acknowledgement = %v, %v; want an Empty", ack, err)
	}

	st, err := m.Get(ctx, "progress-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "progress-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Get = %v, want not found: a stream has one user", err)
	}
	if err := st.Send(&transfertypes.Progress{Event: "downloading", Name: "layer-x", Progress: 3, Total: 9}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.Recv()
	var p transfertypes.Progress
	if err != nil || streaming.Unmarshal(got, &p) != nil || p.GetProgress() != 3 || got.GetTypeUrl() != "containerd.types.transfer.Progress" {
		t.Fatalf("client received %v (%v), %v", got, &p, err)
	}
	up, _ := streaming.Marshal(&transfertypes.WindowUpdate{Update: 5})
	if err := cs.Send(up); err != nil {
		t.Fatal(err)
	}
	a, err := st.Recv()
	var w transfertypes.WindowUpdate
	if err != nil || streaming.Unmarshal(a, &w) != nil || w.GetUpdate() != 5 {
		t.Fatalf("server received %v, %v", a, err)
	}
	if err := streaming.Unmarshal(a, &transfertypes.Data{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Unmarshal into another type = %v, want invalid argument", err)
	}

	st.Close()
	if _, err := cs.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("client Recv after Close = %v, want EOF", err)
	}
	if err := st.Send(&emptypb.Empty{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Send after Close = %v, want unavailable", err)
	}
}
