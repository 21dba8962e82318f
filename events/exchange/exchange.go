// Package exchange fans events out to the subscribers of this process, as
// containerd's event exchange does: the services publish on it after each
// change (through events.Publisher), clients forward envelopes made
// elsewhere, and the events service (services/events) streams it to its
// subscribers.
package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/namespaces"
)

// DefaultBuffer is how many envelopes a subscriber may lag behind
// publishers before the exchange ends its subscription.
const DefaultBuffer = 1024

// Exchange fans events out to the subscribers of this process, as
// containerd's event exchange does. Each envelope carries a timestamp, the
// namespace of the publisher's context, a topic ("/images/create") and the
// event as an Any whose type URL is the message's full protobuf name
// ("containerd.events.NamespaceCreate"), which is what containerd's
// typeurl produces and ctr decodes.
//
// Publishers never wait for subscribers: each subscription has a bounded
// buffer, and one that falls further behind than that is ended (its
// channel closes and Err says why) rather than silently missing events.
//
// Typical use:
//
//	x := exchange.New(log, 0)
//	sub, err := x.Subscribe(ctx, `topic~="^/images/"`, `namespace==default`)
//	if err != nil { … }
//	for env := range sub.C { … }
//	if err := sub.Err(); err != nil { … } // fell behind
type Exchange struct {
	log    *slog.Logger
	buffer int

	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// New returns an exchange whose subscribers may lag buffer envelopes
// behind (DefaultBuffer when buffer <= 0). A nil log discards.
func New(log *slog.Logger, buffer int) *Exchange {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Exchange{log: log, buffer: buffer, subs: make(map[*Subscription]struct{})}
}

// Subscription receives the envelopes that match its filters. Envelopes
// on C are shared with other subscribers: read them, do not modify them.
type Subscription struct {
	// C delivers envelopes in publishing order; it is closed when the
	// subscription's context ends or the subscriber falls behind.
	C <-chan *types.Envelope

	c      chan *types.Envelope
	filter filters.Filter
	stop   func() bool
	err    error // set before c is closed
}

// Err returns why the subscription ended, once C is closed: nil when its
// context ended, an error wrapping errdefs.ErrResourceExhausted when the
// subscriber fell behind.
func (s *Subscription) Err() error { return s.err }

// Subscribe returns a subscription to the envelopes published from now on
// that match any of fs (containerd's filter syntax over "topic",
// "namespace" and "event.<field>"; none matches all, from every
// namespace). It ends when ctx does. A filter that does not parse gives
// errdefs.ErrInvalidArgument.
func (x *Exchange) Subscribe(ctx context.Context, fs ...string) (*Subscription, error) {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	c := make(chan *types.Envelope, x.buffer)
	sub := &Subscription{C: c, c: c, filter: filter}
	x.mu.Lock()
	x.subs[sub] = struct{}{}
	x.mu.Unlock()
	sub.stop = context.AfterFunc(ctx, func() { x.end(sub, nil) })
	return sub, nil
}

// Subscribers returns how many subscriptions are active.
func (x *Exchange) Subscribers() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.subs)
}

// end removes sub and closes its channel with err as the reason, once.
func (x *Exchange) end(sub *Subscription, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.endLocked(sub, err)
}

func (x *Exchange) endLocked(sub *Subscription, err error) {
	if _, ok := x.subs[sub]; !ok {
		return
	}
	delete(x.subs, sub)
	sub.err = err
	close(sub.c)
}

// Publish sends event on topic in the namespace of ctx, stamped with the
// current time. It fails with errdefs.ErrFailedPrecondition when ctx has
// no namespace and errdefs.ErrInvalidArgument for a malformed topic or an
// event that cannot be packed. An *anypb.Any is sent as it is.
func (x *Exchange) Publish(ctx context.Context, topic string, event proto.Message) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return fmt.Errorf("publish event %q: %w", topic, err)
	}
	if err := validateTopic(topic); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	a, err := packEvent(event)
	if err != nil {
		return fmt.Errorf("publish event %q: %w", topic, err)
	}
	x.dispatch(&types.Envelope{Timestamp: timestamppb.New(time.Now().UTC()), Namespace: ns, Topic: topic, Event: a})
	return nil
}

// Forward sends an envelope made elsewhere as it is, keeping its
// timestamp and namespace. It fails with errdefs.ErrInvalidArgument when
// the envelope's namespace or topic is malformed or it has no event.
func (x *Exchange) Forward(ctx context.Context, env *types.Envelope) error {
	if env == nil {
		return fmt.Errorf("forward event: envelope is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := namespaces.Validate(env.Namespace); err != nil {
		return fmt.Errorf("forward event %q: %w", env.Topic, err)
	}
	if err := validateTopic(env.Topic); err != nil {
		return fmt.Errorf("forward event: %w", err)
	}
	if env.Event == nil {
		return fmt.Errorf("forward event %q: event is required: %w", env.Topic, errdefs.ErrInvalidArgument)
	}
	if env.Timestamp == nil {
		env = proto.CloneOf(env)
		env.Timestamp = timestamppb.New(time.Now().UTC())
	}
	x.dispatch(env)
	return nil
}

func (x *Exchange) dispatch(env *types.Envelope) {
	fields := envelopeFields(env)
	x.mu.Lock()
	defer x.mu.Unlock()
	for sub := range x.subs {
		if !sub.filter.Match(fields) {
			continue
		}
		select {
		case sub.c <- env:
		default:
			sub.stop()
			x.log.Warn("events subscriber fell behind; ending its subscription", "buffer", x.buffer, "topic", env.Topic, "namespace", env.Namespace)
			x.endLocked(sub, fmt.Errorf("events subscriber fell more than %d events behind: %w", x.buffer, errdefs.ErrResourceExhausted))
		}
	}
}

// topicComponent is containerd's identifier rule, which topic components
// follow.
var topicComponent = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// validateTopic accepts "/a/b…" where each component is an identifier, as
// containerd's exchange does.
func validateTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("topic must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(topic, "/") {
		return fmt.Errorf("topic %q: must start with '/': %w", topic, errdefs.ErrInvalidArgument)
	}
	for _, c := range strings.Split(topic[1:], "/") {
		if len(c) > 76 || !topicComponent.MatchString(c) {
			return fmt.Errorf("topic %q: component %q is not an identifier: %w", topic, c, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// packEvent wraps event in an Any whose type URL is the bare full name of
// its message, as containerd's typeurl does (not anypb's
// "type.googleapis.com/" form, which ctr 1.6 cannot decode).
func packEvent(event proto.Message) (*anypb.Any, error) {
	if event == nil {
		return nil, fmt.Errorf("event is required: %w", errdefs.ErrInvalidArgument)
	}
	if a, ok := event.(*anypb.Any); ok {
		return a, nil
	}
	b, err := proto.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w: %w", proto.MessageName(event), err, errdefs.ErrInvalidArgument)
	}
	return &anypb.Any{TypeUrl: string(proto.MessageName(event)), Value: b}, nil
}

// envelopeFields lets filters match "topic", "namespace" and
// "event.<field>" of the payload, which is decoded once, on first use,
// when its type is known here and has fields (containerd's event types do).
func envelopeFields(env *types.Envelope) filters.Adaptor {
	var (
		once    sync.Once
		decoded fieldser
	)
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "namespace":
			return env.Namespace, env.Namespace != ""
		case "topic":
			return env.Topic, env.Topic != ""
		case "event":
			once.Do(func() { decoded = decodeEvent(env.Event) })
			if decoded == nil {
				return "", false
			}
			return decoded.Field(fieldpath[1:])
		}
		return "", false
	})
}

// fieldser is what filters need of a decoded event: containerd's generated
// event types have this method, and so do strata's wire-level payloads.
type fieldser interface {
	Field(fieldpath []string) (string, bool)
}

// decodeEvent returns the fields of a, or nil when its type is unknown or
// its bytes do not decode.
func decodeEvent(a *anypb.Any) fieldser {
	m, err := events.Unpack(a)
	if err != nil {
		return nil
	}
	f, _ := m.(fieldser)
	return f
}

var _ events.Publisher = (*Exchange)(nil)
