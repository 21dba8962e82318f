package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/events/exchange"
	"github.com/strata-oci/strata/namespaces"
)

// TestTell: an event published after a change reaches subscribers and
// decodes to its fields; one that cannot be published (no namespace) is
// logged, not returned, and a nil publisher is no events at all.
func TestTell(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	x := exchange.New(nil, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := x.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}

	events.Tell(ctx, x, log, events.TopicImageCreate, &apievents.ImageCreate{Name: "no-namespace"})
	if !strings.Contains(logged.String(), "event not published") || !strings.Contains(logged.String(), events.TopicImageCreate) {
		t.Fatalf("a publish without namespace logged %q, want a warning naming the topic", logged.String())
	}
	events.Tell(ctx, nil, log, events.TopicImageCreate, &apievents.ImageCreate{Name: "nil-publisher"})

	ns := namespaces.WithNamespace(ctx, "a")
	events.Tell(ns, x, log, events.TopicImageCreate, &apievents.ImageCreate{Name: "img", Labels: map[string]string{"k": "v"}})
	env := <-sub.C
	p, err := events.Decode(env.Event)
	if err != nil {
		t.Fatal(err)
	}
	if env.Namespace != "a" || env.Topic != events.TopicImageCreate || p.Fields["name"] != "img" || p.Labels["k"] != "v" {
		t.Fatalf("event = %v, decoded %+v; want ImageCreate img in a", env, p)
	}
	if v, ok := p.Field([]string{"labels", "k"}); !ok || v != "v" {
		t.Fatalf("Field(labels.k) = %q, %v", v, ok)
	}
	select {
	case env := <-sub.C:
		t.Fatalf("unexpected event %v", env)
	default:
	}

	unknown := &anypb.Any{TypeUrl: "example.com/Unknown", Value: env.Event.Value}
	if _, err := events.Decode(unknown); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Decode of an unknown type = %v, want ErrNotFound", err)
	}
}
