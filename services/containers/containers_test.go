package containers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/access"
	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestMain doubles as the non-root peer of TestNonRootPeer: run with
// STRATA_TEST_PEER=<socket> <verb> <id>, it asks the daemon once and
// prints the error, if any.
func TestMain(m *testing.M) {
	if sock := os.Getenv("STRATA_TEST_PEER"); sock != "" {
		os.Exit(peerMain(sock, os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func peerMain(sock, verb, id string) int {
	conn, err := client.Dial(sock)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer conn.Close()
	s := client.NewContainerStore(conn)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), time.Minute)
	defer cancel()
	switch verb {
	case "list":
		var cs []containers.Container
		if cs, err = s.List(ctx); err == nil && len(cs) != 1 {
			err = fmt.Errorf("listed %d containers, want 1", len(cs))
		}
	case "get":
		_, err = s.Get(ctx, id)
	case "create":
		_, err = s.Create(ctx, testContainer(id))
	case "update":
		_, err = s.Update(ctx, containers.Container{ID: id, Labels: map[string]string{"by": "peer"}}, "labels.by")
	case "delete":
		err = s.Delete(ctx, id)
	default:
		err = fmt.Errorf("unknown verb %q", verb)
	}
	if err != nil {
		fmt.Println(err)
		if errors.Is(err, errdefs.ErrPermissionDenied) {
			return 3
		}
		return 1
	}
	return 0
}

func testContainer(id string) containers.Container {
	return containers.Container{
		ID:      id,
		Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec:    &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte("{}")},
	}
}

// TestNonRootPeer: a process running as nobody, connected to the daemon's
// socket (opened to all, as to a group), reads containers but may not
// create, update or delete one by default; with the daemon's AllowGroup it
// may. Root may either way.
func TestNonRootPeer(t *testing.T) {
	nobody := testutil.AsNobody(t, "peer")
	for _, allowGroup := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow_group=%v", allowGroup), func(t *testing.T) {
			d := servertest.StartWith(t, server.Config{Access: access.Policy{AllowGroup: allowGroup}})
			testutil.OpenToAll(t, d.Address)
			ctx := namespaces.WithNamespace(context.Background(), "default")
			root := client.NewContainerStore(d.Conn)
			if _, err := root.Create(ctx, testContainer("byroot")); err != nil {
				t.Fatalf("Create as root: %v", err)
			}
			peer := func(verb, id string) (int, string) {
				t.Helper()
				cmd := nobody([]string{"STRATA_TEST_PEER=" + d.Address}, verb, id)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatalf("run the peer: %v", err)
				}
				return cmd.ProcessState.ExitCode(), string(out)
			}
			for _, verb := range []string{"list", "get"} {
				if code, out := peer(verb, "byroot"); code != 0 {
					t.Errorf("%s as nobody = exit %d: %s; want it allowed", verb, code, out)
				}
			}
			for _, call := range [][2]string{{"create", "bynobody"}, {"update", "byroot"}, {"delete", "byroot"}} {
				code, out := peer(call[0], call[1])
				switch {
				case allowGroup && code != 0:
					t.Errorf("%s as nobody with allow_group = exit %d: %s; want it allowed", call[0], code, out)
				case !allowGroup && (code != 3 || !strings.Contains(out, "uid 65534") || !strings.Contains(out, call[1]) || !strings.Contains(out, "allow_group")):
					t.Errorf("%s as nobody = exit %d: %s; want permission denied naming the container, the peer and the setting", call[0], code, out)
				}
			}
			// What the refused calls left: nothing changed.
			cs, err := root.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range cs {
				ids = append(ids, c.ID+fmt.Sprint(c.Labels))
			}
			want := "[byroot" + fmt.Sprint(map[string]string(nil)) + "]"
			if allowGroup {
				want = "[bynobody" + fmt.Sprint(map[string]string(nil)) + "]"
			}
			if fmt.Sprint(ids) != want {
				t.Errorf("containers after the peer's calls = %v, want %s", ids, want)
			}
		})
	}
}

// TestEvents: create, update and delete publish containerd's events, with
// the fields containerd's carry.
func TestEvents(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := eventsapi.NewEventsClient(d.Conn).Subscribe(sctx, &eventsapi.SubscribeRequest{Filters: []string{`topic~="^/containers/"`}})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is in place once an event published after it
	// arrives; wait for the server to count it.
	for d.Server.Events().Subscribers() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	s := client.NewContainerStore(d.Conn)
	c := testContainer("ev")
	c.Image = "img:1"
	if _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, containers.Container{ID: "ev", Labels: map[string]string{"k": "v"}}, "labels.k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		topic string
		event proto.Message
	}{
		{"/containers/create", &eventstypes.ContainerCreate{ID: "ev", Image: "img:1", Runtime: &eventstypes.ContainerCreate_Runtime{Name: "io.containerd.runc.v2"}}},
		{"/containers/update", &eventstypes.ContainerUpdate{ID: "ev", Image: "img:1", Labels: map[string]string{"k": "v"}}},
		{"/containers/delete", &eventstypes.ContainerDelete{ID: "ev"}},
	} {
		env, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := proto.Clone(want.event)
		proto.Reset(got)
		if err := env.Event.UnmarshalTo(got); err != nil {
			t.Fatalf("event on %s: %v", env.Topic, err)
		}
		if env.Topic != want.topic || env.Namespace != "default" || !proto.Equal(got, want.event) {
			t.Errorf("event = %s %s %v, want %s default %v", env.Topic, env.Namespace, got, want.topic, want.event)
		}
	}
}
