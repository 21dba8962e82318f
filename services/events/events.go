// Package events serves containerd.services.events.v1 over the daemon's
// event exchange (events/exchange): clients publish and forward events,
// and subscribe to what the services publish after each change.
package events

import (
	"context"
	"fmt"

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
	x Exchange
}

// New returns the service over x.
func New(x Exchange) *Service { return &Service{x: x} }

// Register serves the service on g.
func (e *Service) Register(g *grpc.Server) { eventsapi.RegisterEventsServer(g, e) }

// Publish publishes the request's event in the call's namespace.
func (e *Service) Publish(ctx context.Context, req *eventsapi.PublishRequest) (*emptypb.Empty, error) {
	if req.Event == nil {
		return nil, fmt.Errorf("publish event %q: event is required: %w", req.Topic, errdefs.ErrInvalidArgument)
	}
	if err := e.x.Publish(ctx, req.Topic, req.Event); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Forward sends an envelope made elsewhere as it is.
func (e *Service) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
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
