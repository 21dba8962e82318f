package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc/codes"
	grpcmetadata "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/protoconv"
	"github.com/strata-oci/strata/server/servertest"
)

// endTopic marks the end of a test's events: every subscription in these
// tests also matches it, so reading up to it reads all that came before.
const endTopic = "/test/end"

// eventSeen is an envelope with its payload decoded, for comparing.
type eventSeen struct {
	Namespace, Topic, Type string
	Fields, Labels         map[string]string
}

func (e eventSeen) String() string {
	return fmt.Sprintf("%s %s %s %v labels=%v", e.Namespace, e.Topic, e.Type, e.Fields, e.Labels)
}

func seen(t *testing.T, env *types.Envelope) eventSeen {
	t.Helper()
	if env.Timestamp == nil || env.Event == nil {
		t.Fatalf("envelope %v lacks a timestamp or an event", env)
	}
	e := eventSeen{Namespace: env.Namespace, Topic: env.Topic, Type: env.Event.TypeUrl}
	if env.Topic == endTopic {
		return e
	}
	p, err := events.Decode(env.Event)
	if err != nil {
		t.Fatalf("event on %s: %v", env.Topic, err)
	}
	e.Fields, e.Labels = p.Fields, p.Labels
	return e
}

// subscribe opens an events stream with filters (plus one for endTopic)
// and returns once the daemon has registered it.
func subscribe(t *testing.T, d *servertest.Daemon, fs ...string) eventsapi.Events_SubscribeClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if len(fs) > 0 {
		fs = append(fs, `topic=="`+endTopic+`"`)
	}
	stream, err := eventsapi.NewEventsClient(d.Conn).Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: fs})
	if err != nil {
		t.Fatal(err)
	}
	// The daemon sends headers once the subscription is in place.
	if _, err := stream.Header(); err != nil {
		t.Fatalf("subscribe %q: %v", fs, err)
	}
	return stream
}

// publishEnd publishes endTopic in namespace "test".
func publishEnd(t *testing.T, d *servertest.Daemon) {
	t.Helper()
	ev, err := anypb.New(&types.Platform{OS: "end"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := servertest.Context(context.Background(), "test")
	if _, err := eventsapi.NewEventsClient(d.Conn).Publish(ctx, &eventsapi.PublishRequest{Topic: endTopic, Event: ev}); err != nil {
		t.Fatal(err)
	}
}

// readToEnd returns the events of stream before endTopic.
func readToEnd(t *testing.T, stream eventsapi.Events_SubscribeClient) []eventSeen {
	t.Helper()
	var got []eventSeen
	var last time.Time
	for {
		env, err := stream.Recv()
		if err != nil {
			t.Fatalf("events after %v: %v", got, err)
		}
		if ts := env.Timestamp.AsTime(); ts.Before(last) {
			t.Fatalf("event %s at %s came after one at %s", env.Topic, ts, last)
		} else {
			last = ts
		}
		if env.Topic == endTopic {
			return got
		}
		got = append(got, seen(t, env))
	}
}

func checkEvents(t *testing.T, what string, got, want []eventSeen) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Namespace == w.Namespace && g.Topic == w.Topic && g.Type == w.Type &&
			maps.Equal(g.Fields, w.Fields) && maps.Equal(g.Labels, w.Labels)
	}
	if !ok {
		var b strings.Builder
		for _, e := range got {
			fmt.Fprintf(&b, "\n  got  %s", e)
		}
		for _, e := range want {
			fmt.Fprintf(&b, "\n  want %s", e)
		}
		t.Fatalf("%s: events differ:%s", what, b.String())
	}
}

func fields(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// eventsWorkload does one of each change that publishes, in namespaces a
// and b, through the gRPC services, and returns what it should publish.
func eventsWorkload(t *testing.T, d *servertest.Daemon) []eventSeen {
	t.Helper()
	bg := context.Background()
	ctxA, ctxB := servertest.Context(bg, "a"), servertest.Context(bg, "b")
	// The snapshots of b are held by a lease, as a real client's are: the
	// collection that deleting img1 schedules could otherwise remove n1
	// before k2 is prepared on it.
	if _, err := leasesapi.NewLeasesClient(d.Conn).Create(ctxB, &leasesapi.CreateRequest{ID: "workload"}); err != nil {
		t.Fatal(err)
	}
	ctxB = grpcmetadata.AppendToOutgoingContext(ctxB, leases.GRPCHeader, "workload")
	nsc := namespacesapi.NewNamespacesClient(d.Conn)
	imc := imagesapi.NewImagesClient(d.Conn)
	snc := snapshotsapi.NewSnapshotsClient(d.Conn)
	cc := contentapi.NewContentClient(d.Conn)
	manifest, blobs := d.ImageFixture(t, "a", "fixture")

	// Without a namespace header the change happens but has no namespace
	// to be published in (containerd would fail the call after the change).
	if _, err := nsc.Create(bg, &namespacesapi.CreateNamespaceRequest{Namespace: &namespacesapi.Namespace{Name: "silent"}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		call func() error
	}{
		{"create namespace x", func() error {
			_, err := nsc.Create(ctxA, &namespacesapi.CreateNamespaceRequest{Namespace: &namespacesapi.Namespace{Name: "x", Labels: map[string]string{"team": "red"}}})
			return err
		}},
		{"label namespace x", func() error {
			_, err := nsc.Update(ctxA, &namespacesapi.UpdateNamespaceRequest{
				Namespace:  &namespacesapi.Namespace{Name: "x", Labels: map[string]string{"tier": "gold"}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels.tier"}},
			})
			return err
		}},
		{"create image", func() error {
			_, err := imc.Create(ctxA, &imagesapi.CreateImageRequest{Image: protoconv.ImageToProto(images.Image{
				Name: "img1", Target: manifest, Labels: map[string]string{"team": "blue"},
			})})
			return err
		}},
		{"update image", func() error {
			_, err := imc.Update(ctxA, &imagesapi.UpdateImageRequest{
				Image:      &imagesapi.Image{Name: "img1", Labels: map[string]string{"team": "red"}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
			})
			return err
		}},
		{"delete image", func() error {
			_, err := imc.Delete(ctxA, &imagesapi.DeleteImageRequest{Name: "img1"})
			return err
		}},
		{"prepare k1", func() error {
			_, err := snc.Prepare(ctxB, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: "native", Key: "k1"})
			return err
		}},
		{"commit k1", func() error {
			_, err := snc.Commit(ctxB, &snapshotsapi.CommitSnapshotRequest{Snapshotter: "native", Key: "k1", Name: "n1"})
			return err
		}},
		{"prepare k2", func() error {
			_, err := snc.Prepare(ctxB, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: "native", Key: "k2", Parent: "n1"})
			return err
		}},
		{"view v1 (publishes nothing, as in containerd)", func() error {
			_, err := snc.View(ctxB, &snapshotsapi.ViewSnapshotRequest{Snapshotter: "native", Key: "v1", Parent: "n1"})
			return err
		}},
		{"remove k2", func() error {
			_, err := snc.Remove(ctxB, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: "native", Key: "k2"})
			return err
		}},
		{"delete blob", func() error {
			_, err := cc.Delete(ctxA, &contentapi.DeleteContentRequest{Digest: blobs[len(blobs)-1].Digest.String()})
			return err
		}},
		{"fail to delete the blob again (publishes nothing)", func() error {
			_, err := cc.Delete(ctxA, &contentapi.DeleteContentRequest{Digest: blobs[len(blobs)-1].Digest.String()})
			if status.Code(err) != codes.NotFound {
				return fmt.Errorf("second delete: %v, want NotFound", err)
			}
			return nil
		}},
		{"delete namespace x", func() error {
			_, err := nsc.Delete(ctxB, &namespacesapi.DeleteNamespaceRequest{Name: "x"})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	const (
		img  = "containerd.services.images.v1."
		evts = "containerd.events."
	)
	return []eventSeen{
		{"a", "/namespaces/create", evts + "NamespaceCreate", fields("name", "x"), fields("team", "red")},
		{"a", "/namespaces/update", evts + "NamespaceUpdate", fields("name", "x"), fields("team", "red", "tier", "gold")},
		{"a", "/images/create", img + "ImageCreate", fields("name", "img1"), fields("team", "blue")},
		{"a", "/images/update", img + "ImageUpdate", fields("name", "img1"), fields("team", "red")},
		{"a", "/images/delete", img + "ImageDelete", fields("name", "img1"), nil},
		{"b", "/snapshot/prepare", evts + "SnapshotPrepare", fields("key", "k1", "snapshotter", "native"), nil},
		{"b", "/snapshot/commit", evts + "SnapshotCommit", fields("key", "k1", "name", "n1", "snapshotter", "native"), nil},
		{"b", "/snapshot/prepare", evts + "SnapshotPrepare", fields("key", "k2", "parent", "n1", "snapshotter", "native"), nil},
		{"b", "/snapshot/remove", evts + "SnapshotRemove", fields("key", "k2", "snapshotter", "native"), nil},
		{"a", "/content/delete", evts + "ContentDelete", fields("digest", blobs[len(blobs)-1].Digest.String()), nil},
		{"b", "/namespaces/delete", evts + "NamespaceDelete", fields("name", "x"), nil},
	}
}

func TestEventsFromServices(t *testing.T) {
	d := servertest.Start(t)
	all := subscribe(t, d)
	want := eventsWorkload(t, d)
	publishEnd(t, d)
	checkEvents(t, "no filter", readToEnd(t, all), want)
}

func TestEventsFilters(t *testing.T) {
	d := servertest.Start(t)
	tests := []struct {
		name    string
		filters []string
		keep    func(e eventSeen) bool
	}{
		{"Topic", []string{`topic=="/namespaces/create"`}, func(e eventSeen) bool { return e.Topic == "/namespaces/create" }},
		{"TopicRegexp", []string{`topic~="^/snapshot/"`}, func(e eventSeen) bool { return strings.HasPrefix(e.Topic, "/snapshot/") }},
		{"Namespace", []string{`namespace==b`}, func(e eventSeen) bool { return e.Namespace == "b" }},
		{"NotNamespace", []string{`namespace!=b`}, func(e eventSeen) bool { return e.Namespace != "b" }},
		{"And", []string{`namespace==a,topic~="^/images/"`}, func(e eventSeen) bool {
			return e.Namespace == "a" && strings.HasPrefix(e.Topic, "/images/")
		}},
		{"Or", []string{`topic=="/images/delete"`, `topic=="/content/delete"`}, func(e eventSeen) bool {
			return e.Topic == "/images/delete" || e.Topic == "/content/delete"
		}},
		{"EventField", []string{`event.name==x`}, func(e eventSeen) bool { return e.Fields["name"] == "x" }},
		{"EventLabel", []string{`event.labels.team==red`}, func(e eventSeen) bool { return e.Labels["team"] == "red" }},
		{"EventParent", []string{`event.parent==n1`}, func(e eventSeen) bool { return e.Fields["parent"] == "n1" }},
		{"EventFieldPresent", []string{`event.snapshotter`}, func(e eventSeen) bool { return e.Fields["snapshotter"] != "" }},
	}
	streams := make([]eventsapi.Events_SubscribeClient, len(tests))
	for i, tt := range tests {
		streams[i] = subscribe(t, d, tt.filters...)
	}
	all := eventsWorkload(t, d)
	publishEnd(t, d)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []eventSeen
			for _, e := range all {
				if tt.keep(e) {
					want = append(want, e)
				}
			}
			if len(want) == 0 {
				t.Fatalf("filter %q keeps nothing of the workload: a useless case", tt.filters)
			}
			checkEvents(t, fmt.Sprintf("filters %q", tt.filters), readToEnd(t, streams[i]), want)
		})
	}

	t.Run("Invalid", func(t *testing.T) {
		stream, err := eventsapi.NewEventsClient(d.Conn).Subscribe(context.Background(), &eventsapi.SubscribeRequest{Filters: []string{`topic==`, `===`}})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Subscribe with a malformed filter = %v, want InvalidArgument", err)
		}
	})
}

func TestEventsPublishForward(t *testing.T) {
	d := servertest.Start(t)
	ec := eventsapi.NewEventsClient(d.Conn)
	stream := subscribe(t, d)
	ctx := servertest.Context(context.Background(), "pub")

	payload, err := anypb.New(&types.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := ec.Publish(ctx, &eventsapi.PublishRequest{Topic: "/custom/thing", Event: payload}); err != nil {
		t.Fatal(err)
	}
	env, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if env.Namespace != "pub" || env.Topic != "/custom/thing" || !proto.Equal(env.Event, payload) || env.Timestamp.AsTime().Before(before.Add(-time.Second)) {
		t.Fatalf("Publish delivered %v, want namespace pub, topic /custom/thing, event %v stamped now", env, payload)
	}

	forwarded := &types.Envelope{Timestamp: timestamppb.New(time.Unix(1000, 0)), Namespace: "elsewhere", Topic: "/from/afar", Event: payload}
	if _, err := ec.Forward(ctx, &eventsapi.ForwardRequest{Envelope: forwarded}); err != nil {
		t.Fatal(err)
	}
	env, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(env, forwarded) {
		t.Fatalf("Forward delivered %v, want %v unchanged", env, forwarded)
	}

	errTests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"PublishNoNamespace", func() error {
			_, err := ec.Publish(context.Background(), &eventsapi.PublishRequest{Topic: "/a", Event: payload})
			return err
		}, codes.FailedPrecondition},
		{"PublishNoEvent", func() error {
			_, err := ec.Publish(ctx, &eventsapi.PublishRequest{Topic: "/a"})
			return err
		}, codes.InvalidArgument},
		{"PublishTopicWithoutSlash", func() error {
			_, err := ec.Publish(ctx, &eventsapi.PublishRequest{Topic: "a/b", Event: payload})
			return err
		}, codes.InvalidArgument},
		{"PublishEmptyTopicComponent", func() error {
			_, err := ec.Publish(ctx, &eventsapi.PublishRequest{Topic: "/a//b", Event: payload})
			return err
		}, codes.InvalidArgument},
		{"ForwardNoEnvelope", func() error {
			_, err := ec.Forward(ctx, &eventsapi.ForwardRequest{})
			return err
		}, codes.InvalidArgument},
		{"ForwardBadNamespace", func() error {
			_, err := ec.Forward(ctx, &eventsapi.ForwardRequest{Envelope: &types.Envelope{Namespace: "a b", Topic: "/a", Event: payload}})
			return err
		}, codes.InvalidArgument},
		{"ForwardNoEvent", func() error {
			_, err := ec.Forward(ctx, &eventsapi.ForwardRequest{Envelope: &types.Envelope{Namespace: "a", Topic: "/a"}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status.Code(err) != tt.want {
				t.Fatalf("%s = %v, want %s", tt.name, err, tt.want)
			}
		})
	}
	// None of the failed calls delivered anything.
	publishEnd(t, d)
	if got := readToEnd(t, stream); len(got) != 0 {
		t.Fatalf("failed calls delivered %v", got)
	}
}

// ctrEvent is one line of `ctr events`: TIMESTAMP NAMESPACE TOPIC PAYLOAD,
// the timestamp in Go's time.Time format (four words).
type ctrEvent struct {
	Time             time.Time
	Namespace, Topic string
	Payload          map[string]any
}

func parseCtrEvent(line string) (ctrEvent, error) {
	parts := strings.SplitN(line, " ", 7)
	if len(parts) != 7 {
		return ctrEvent{}, fmt.Errorf("ctr events line %q: want 7 fields", line)
	}
	ts, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", strings.Join(parts[:4], " "))
	if err != nil {
		return ctrEvent{}, fmt.Errorf("ctr events line %q: %w", line, err)
	}
	e := ctrEvent{Time: ts, Namespace: parts[4], Topic: parts[5]}
	if err := json.Unmarshal([]byte(parts[6]), &e.Payload); err != nil {
		return ctrEvent{}, fmt.Errorf("ctr events line %q: payload: %w", line, err)
	}
	return e, nil
}

func TestEventsWithCtr(t *testing.T) {
	d := servertest.Start(t)
	manifest, _ := d.ImageFixture(t, "default", "fixture")
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if _, err := d.Store.DB.Images().Create(ctx, images.Image{Name: "registry.test/src:1", Target: manifest}); err != nil {
		t.Fatal(err)
	}

	// The deadline only ends a ctr that hangs; nothing waits on time.
	runCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "ctr", "-a", d.Address, "-n", "default", "events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// ctr says nothing when it has subscribed: wait until the daemon has
	// its subscription.
	for d.Server.Events().Subscribers() == 0 {
		select {
		case <-runCtx.Done():
			t.Fatalf("ctr events never subscribed: %s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}

	d.Ctr(t, "default", "namespaces", "create", "x", "owner=ops")
	d.Ctr(t, "default", "images", "tag", "registry.test/src:1", "registry.test/dst:1")
	d.Ctr(t, "default", "images", "rm", "registry.test/dst:1")
	d.Ctr(t, "other", "snapshots", "--snapshotter", "native", "prepare", "k1")
	want := []struct {
		namespace, topic string
		payload          string
	}{
		{"default", "/namespaces/create", `{"labels":{"owner":"ops"},"name":"x"}`},
		{"default", "/images/create", `{"name":"registry.test/dst:1"}`},
		{"default", "/images/delete", `{"name":"registry.test/dst:1"}`},
		// ctr 1.6's SnapshotPrepare has no snapshotter field yet.
		{"other", "/snapshot/prepare", `{"key":"k1"}`},
	}
	var last time.Time
	for i, w := range want {
		line, ok := <-lines
		if !ok {
			t.Fatalf("ctr events ended before event %d (%s %s): %v\n%s", i, w.namespace, w.topic, cmd.Wait(), stderr.String())
		}
		got, err := parseCtrEvent(line)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := json.Marshal(got.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if got.Namespace != w.namespace || got.Topic != w.topic || string(payload) != w.payload {
			t.Fatalf("ctr events line %d = %q, want %s %s %s", i, line, w.namespace, w.topic, w.payload)
		}
		if got.Time.Before(last) {
			t.Fatalf("ctr events line %d at %s, before the one at %s", i, got.Time, last)
		}
		last = got.Time
	}
}

func TestEventsPluginsWithCtr(t *testing.T) {
	d := servertest.Start(t)
	out := d.Ctr(t, "default", "plugins", "ls")
	for _, want := range []string{"io.containerd.event.v1 exchange - ok", "io.containerd.grpc.v1 events - ok"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Join(strings.Fields(line), " ") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("ctr plugins ls lacks %q:\n%s", want, out)
		}
	}
}

// A gRPC subscriber that does not read does not hold up the services; it
// gets what was buffered, then ResourceExhausted.
func TestEventsSlowGRPCSubscriber(t *testing.T) {
	d := servertest.Start(t)
	stream := subscribe(t, d)
	ctx := namespaces.WithNamespace(context.Background(), "flood")
	ev, err := anypb.New(&types.Platform{OS: strings.Repeat("x", 4<<10)})
	if err != nil {
		t.Fatal(err)
	}
	// 32 MiB of events: twice what the client's gRPC flow-control window
	// can grow to (16 MiB), plus the subscriber's buffer, can take in.
	const n = 8 << 10
	for i := range n {
		if err := d.Server.Events().Publish(ctx, "/flood", ev); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	got := 0
	for {
		_, err := stream.Recv()
		if err == nil {
			got++
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || got == 0 || got >= n {
			t.Fatalf("after %d of %d events: %v, want ResourceExhausted", got, n, err)
		}
		break
	}
	// The services still publish to those who keep up.
	again := subscribe(t, d)
	publishEnd(t, d)
	if got := readToEnd(t, again); len(got) != 0 {
		t.Fatalf("unexpected events %v", got)
	}
}
