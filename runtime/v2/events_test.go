package v2

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	eventsttrpc "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/testutil"
)

// TestMain doubles as the non-root peers of TestEventsSocketPeer and
// TestBundleClosed: run with STRATA_TEST_FORGE=<ttrpc socket>, it forwards
// a /tasks/exit event of task "victim" and exits 0 when the daemon took
// it; with STRATA_TEST_PEEK=<path>, it exits 0 when it can open path.
func TestMain(m *testing.M) {
	if path := os.Getenv("STRATA_TEST_PEEK"); path != "" {
		// The peer of TestBundleClosed: exit 0 when it can open path.
		f, err := os.Open(path)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		f.Close()
		os.Exit(0)
	}
	if sock := os.Getenv("STRATA_TEST_FORGE"); sock != "" {
		if err := forge(sock); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func forge(sock string) error {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = eventsttrpc.NewTTRPCEventsClient(c).Forward(ctx, &eventsttrpc.ForwardRequest{Envelope: exitEnvelope("strata-test", "victim")})
	return err
}

func exitEnvelope(ns, id string) *types.Envelope {
	ev := &apievents.TaskExit{ContainerID: id, ID: id, Pid: 1, ExitStatus: 0, ExitedAt: timestamppb.Now()}
	a, err := anypb.New(ev)
	if err != nil {
		panic(err)
	}
	a.TypeUrl = string(proto.MessageName(ev))
	return &types.Envelope{Timestamp: timestamppb.Now(), Namespace: ns, Topic: TopicTaskExit, Event: a}
}

// TestEventsSocketPeer: the ttrpc socket shims publish to is the daemon
// user's alone (mode 0600), and even when it is reachable (here opened to
// all, as a mode slip or the moment between listen and chmod would leave
// it) a peer of another uid cannot forge a task's exit: the connection is
// refused on its credentials and nothing is published.
func TestEventsSocketPeer(t *testing.T) {
	e := newEnv(t)
	sock := e.m.ttrpcAddress()
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("events socket mode %o, want 600", mode)
	}
	nobody := testutil.AsNobody(t, "forge")
	testutil.OpenToAll(t, sock)
	out, err := nobody([]string{"STRATA_TEST_FORGE=" + sock}).CombinedOutput()
	if err == nil {
		t.Errorf("nobody forwarded a /tasks/exit on the events socket: %s", out)
	}
	// Forward publishes before it answers: whatever was taken is here.
	if n := len(e.events); n != 0 {
		t.Errorf("%d events published from nobody: %v", n, <-e.events)
	}
	// The daemon's own uid (the shims') still may.
	if err := forge(sock); err != nil {
		t.Fatalf("forward as the daemon's uid: %v", err)
	}
	if env := <-e.events; env.Topic != TopicTaskExit {
		t.Fatalf("published %s, want %s", env.Topic, TopicTaskExit)
	}
}

// TestForwardNamespaceConfined: the namespace and id of a shim's event
// name no path outside the state directory (the exit-published mark of
// exactly-once exits is written under the bundle they name).
func TestForwardNamespaceConfined(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(filepath.Dir(e.state), "escape")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, ns, id string }{
		{"namespace ..", "..", "escape"},
		{"id with a slash", "strata-test", "../../escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (*eventsService)(e.m).Forward(context.Background(), &eventsttrpc.ForwardRequest{Envelope: exitEnvelope(tc.ns, tc.id)})
			if !errdefs.IsInvalidArgument(errgrpc.ToNative(err)) {
				t.Errorf("Forward(namespace %q, id %q) = %v, want invalid argument", tc.ns, tc.id, err)
			}
			if _, err := os.Stat(filepath.Join(outside, exitPublishedFile)); err == nil {
				t.Fatalf("Forward(namespace %q, id %q) wrote %s outside the state directory", tc.ns, tc.id, exitPublishedFile)
			}
			if n := len(e.events); n != 0 {
				t.Errorf("%d events published", n)
			}
		})
	}
}
