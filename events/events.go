// Package events names what strata tells event subscribers: the topics
// the services publish on after a change, as containerd names them, the
// Publisher they publish through, and Decode for reading an envelope's
// payload back. The exchange that fans envelopes out to subscribers is
// events/exchange; containerd.services.events.v1 serves it
// (services/events).
//
// An event is a protobuf message of containerd's api/events (ImageCreate,
// SnapshotCommit…), packed in an Any whose type URL is the message's full
// name ("containerd.services.images.v1.ImageCreate"), as containerd's
// typeurl packs it and ctr decodes it.
package events

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/filters"
)

// Topics the services publish on, as containerd names them.
const (
	TopicImageCreate     = "/images/create"
	TopicImageUpdate     = "/images/update"
	TopicImageDelete     = "/images/delete"
	TopicNamespaceCreate = "/namespaces/create"
	TopicNamespaceUpdate = "/namespaces/update"
	TopicNamespaceDelete = "/namespaces/delete"
	TopicSnapshotPrepare = "/snapshot/prepare"
	TopicSnapshotCommit  = "/snapshot/commit"
	TopicSnapshotRemove  = "/snapshot/remove"
	TopicContentDelete   = "/content/delete"
)

// Publisher publishes event on topic in the namespace of ctx: the
// daemon's exchange (events/exchange) is one. It fails with
// errdefs.ErrFailedPrecondition when ctx has no namespace and
// errdefs.ErrInvalidArgument for a malformed topic or an event that
// cannot be packed.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message) error
}

// Tell publishes event on p after the change it describes succeeded: the
// change stands whatever happens to its event, so a failure is logged on
// log, not returned. A nil p publishes nothing; a nil log discards.
func Tell(ctx context.Context, p Publisher, log *slog.Logger, topic string, event proto.Message) {
	if p == nil {
		return
	}
	if err := p.Publish(ctx, topic, event); err != nil && log != nil {
		log.Warn("event not published", "topic", topic, "error", err)
	}
}

// Unpack decodes an envelope's payload with the protobuf registry, where
// containerd's event types (api/events) are registered under the names
// they travel by. It fails with errdefs.ErrNotFound for a type it does not
// know and errdefs.ErrInvalidArgument for bytes that do not decode.
func Unpack(a *anypb.Any) (proto.Message, error) {
	if a == nil {
		return nil, fmt.Errorf("decode event: no event: %w", errdefs.ErrInvalidArgument)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(a.TypeUrl)
	if err != nil {
		return nil, fmt.Errorf("decode event: type %q: %w", a.TypeUrl, errdefs.ErrNotFound)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(a.Value, m); err != nil {
		return nil, fmt.Errorf("decode event %s: %w: %w", a.TypeUrl, err, errdefs.ErrInvalidArgument)
	}
	return m, nil
}

// Payload is a decoded event of one of the types strata publishes: its
// string fields by name ("name", "key", "digest"…) and its labels.
type Payload struct {
	Fields map[string]string
	Labels map[string]string
}

// Field lets filters match "name", "key"… and "labels.<key>".
func (p Payload) Field(fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	if fieldpath[0] == "labels" {
		return filters.LabelField(p.Labels, fieldpath)
	}
	v, ok := p.Fields[fieldpath[0]]
	return v, ok && v != ""
}

// Decode decodes the payload of an envelope: its string fields by name
// and its labels. It fails as Unpack does.
func Decode(a *anypb.Any) (Payload, error) {
	m, err := Unpack(a)
	if err != nil {
		return Payload{}, err
	}
	p := Payload{Fields: map[string]string{}}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() && fd.Name() == "labels":
			p.Labels = map[string]string{}
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				p.Labels[k.String()] = v.String()
				return true
			})
		case fd.Kind() == protoreflect.StringKind && !fd.IsList():
			p.Fields[string(fd.Name())] = v.String()
		}
		return true
	})
	return p, nil
}
