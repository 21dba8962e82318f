package events_test

import (
	"context"
	"testing"

	apievents "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/access"
	"github.com/strata-oci/strata/events/exchange"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
	eventssvc "github.com/strata-oci/strata/services/events"
	"github.com/strata-oci/strata/testutil"
)

// TestForgeTaskEvents: a peer that may not run tasks or change containers
// (nobody, by the default access policy) may not publish or forward their
// events either: a forged /tasks/exit would tell every subscriber that a
// running container ended. Other topics stay open to it, and root may
// publish anything.
func TestForgeTaskEvents(t *testing.T) {
	x := exchange.New(testutil.Logger(t), 16)
	svc := eventssvc.New(x, access.Policy{}.MayRun)
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "default"))
	defer cancel()
	sub, err := x.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nobody := peer.NewContext(ctx, &peer.Peer{AuthInfo: peercred.AuthInfo{UID: 65534, Known: true}})
	root := peer.NewContext(ctx, &peer.Peer{AuthInfo: peercred.AuthInfo{UID: 0, Known: true}})
	exit, err := anypb.New(&apievents.TaskExit{ContainerID: "c1", ID: "c1", ExitStatus: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"/tasks/exit", "/tasks/delete", "/containers/delete"} {
		if _, err := svc.Publish(nobody, &eventsapi.PublishRequest{Topic: topic, Event: exit}); !errdefs.IsPermissionDenied(err) {
			t.Errorf("Publish(%s) from nobody = %v, want permission denied", topic, err)
		}
		env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: "default", Topic: topic, Event: exit}
		if _, err := svc.Forward(nobody, &eventsapi.ForwardRequest{Envelope: env}); !errdefs.IsPermissionDenied(err) {
			t.Errorf("Forward(%s) from nobody = %v, want permission denied", topic, err)
		}
	}
	// Publish delivers before it answers: the refused are not queued
	// ahead of these.
	if _, err := svc.Publish(nobody, &eventsapi.PublishRequest{Topic: "/custom/thing", Event: exit}); err != nil {
		t.Errorf("Publish(/custom/thing) from nobody: %v", err)
	}
	if _, err := svc.Publish(root, &eventsapi.PublishRequest{Topic: "/tasks/exit", Event: exit}); err != nil {
		t.Errorf("Publish(/tasks/exit) from root: %v", err)
	}
	for _, want := range []string{"/custom/thing", "/tasks/exit"} {
		if env := <-sub.C; env.Topic != want {
			t.Errorf("delivered %s, want %s", env.Topic, want)
		}
	}
}
