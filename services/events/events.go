// Package events serves containerd.services.events.v1 over the daemon's
// event exchange (events/exchange): clients publish and forward events,
// and subscribe to what the services publish after each change.
package events

import (
	"context"
	"fmt"
	"strings"

	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/events/exchange"
)

// Exchange is what the service needs of the daemon's event exchange
// (events/exchange).
type Exchange interface {
	events.Publisher
	Forward(ctx context.Context, env *types.Envelope) error
	Subscribe(ctx context.Context, filters ...string) (*exchange.Subscription, error)
}

// Service serves containerd.services.events.v1 over an exchange.
type Service struct {
	eventsapi.UnimplementedEventsServer
	x      Exchange
	mayRun func(ctx context.Context, what string) error
}

// New returns the service over x. mayRun (access.Policy.MayRun; nil lets
// every peer) decides who may publish or forward the events of tasks and
// containers (topics /tasks/… and /containers/…): a peer that may not
// run or change them must not be able to tell subscribers that they did,
// a running container's forged /tasks/exit first.
func New(x Exchange, mayRun func(ctx context.Context, what string) error) *Service {
	if mayRun == nil {
		mayRun = func(context.Context, string) error { return nil }
	}
	return &Service{x: x, mayRun: mayRun}
}

// mayPublish refuses a topic of tasks or containers to a peer that may
// not run them.
func (e *Service) mayPublish(ctx context.Context, verb, topic string) error {
	if strings.HasPrefix(topic, "/tasks/") || strings.HasPrefix(topic, "/containers/") {
		return e.mayRun(ctx, fmt.Sprintf("%s event %s", verb, topic))
	}
	return nil
}

// Register serves the service on g.
func (e *Service) Register(g *grpc.Server) { eventsapi.RegisterEventsServer(g, e) }

// Publish publishes the request's event in the call's namespace.
func (e *Service) Publish(ctx context.Context, req *eventsapi.PublishRequest) (*emptypb.Empty, error) {
	if req.Event == nil {
		return nil, fmt.Errorf("publish event %q: event is required: %w", req.Topic, errdefs.ErrInvalidArgument)
	}
	if err := e.mayPublish(ctx, "publish", req.Topic); err != nil {
		return nil, err
	}
	if err := e.x.Publish(ctx, req.Topic, req.Event); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Forward sends an envelope made elsewhere as it is.
func (e *Service) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	if err := e.mayPublish(ctx, "forward", req.GetEnvelope().GetTopic()); err != nil {
		return nil, err
	}
	if err := e.x.Forward(ctx, req.Envelope); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Subscribe streams events from every namespace unless a filter says
// otherwise ("namespace==x"), as containerd's does; it ends when the
// client goes away, or with ResourceExhausted when the client reads too
// slowly.
func (e *Service) Subscribe(req *eventsapi.SubscribeRequest, stream eventsapi.Events_SubscribeServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sub, err := e.x.Subscribe(ctx, req.Filters...)
	if err != nil {
		return err
	}
	// Headers now, not with the first event: a client that waits for
	// them knows it misses nothing published after.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for env := range sub.C {
		if err := stream.Send(env); err != nil {
			return err
		}
	}
	if err := sub.Err(); err != nil {
		return err
	}
	return ctx.Err()
}
