package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/events/exchange"
	"github.com/strata-oci/strata/namespaces"
)

// A subscriber that does not read loses its subscription once its buffer
// is full; publishers and the other subscribers go on.
func TestExchangeSlowSubscriber(t *testing.T) {
	const buffer = 8
	x := exchange.New(nil, buffer)
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "slow"))
	defer cancel()
	slow, err := x.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := x.Subscribe(ctx, `topic~="^/n/"`)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(i int) {
		t.Helper()
		ev, err := anypb.New(&types.Platform{OS: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Publish(ctx, fmt.Sprintf("/n/%d", i), ev); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	readFast := func(n int) {
		t.Helper()
		for range n {
			env, ok := <-fast.C
			if !ok {
				t.Fatalf("fast subscriber ended: %v", fast.Err())
			}
			if want := fmt.Sprintf("/n/%d", next); env.Topic != want {
				t.Fatalf("fast subscriber got %s, want %s", env.Topic, want)
			}
			next++
		}
	}
	for i := range buffer {
		publish(i)
	}
	readFast(buffer)
	// The slow subscriber's buffer is full: this publish ends it rather
	// than waiting for it.
	for i := buffer; i < 10*buffer; i++ {
		publish(i)
		readFast(1)
	}
	for i := range buffer {
		env, ok := <-slow.C
		if !ok || env.Topic != fmt.Sprintf("/n/%d", i) {
			t.Fatalf("slow subscriber's event %d = %v, %v; want /n/%d", i, env, ok, i)
		}
	}
	if env, ok := <-slow.C; ok {
		t.Fatalf("slow subscriber got %s past its buffer", env.Topic)
	}
	if err := slow.Err(); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("slow subscriber's Err() = %v, want ErrResourceExhausted", err)
	}
	if n := x.Subscribers(); n != 1 {
		t.Fatalf("Subscribers() = %d after the slow one ended, want 1", n)
	}
	cancel()
	if _, ok := <-fast.C; ok {
		t.Fatal("fast subscriber still open after its context ended")
	}
	if err := fast.Err(); err != nil {
		t.Fatalf("Err() after the context ended = %v, want nil", err)
	}
	if n := x.Subscribers(); n != 0 {
		t.Fatalf("Subscribers() = %d after every context ended, want 0", n)
	}
}
