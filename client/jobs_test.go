package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/events"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// countingSink records the statuses each item went through.
type countingSink struct {
	mu       sync.Mutex
	statuses map[string][]progress.Status
}

func (s *countingSink) Update(u progress.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statuses == nil {
		s.statuses = map[string][]progress.Status{}
	}
	if l := s.statuses[u.ID]; u.Status != "" && (len(l) == 0 || l[len(l)-1] != u.Status) {
		s.statuses[u.ID] = append(l, u.Status)
	}
}

func slowImage(t *testing.T, delay time.Duration) (*testutil.Proxy, string) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	testutil.PushRandomImage(t, reg.Host, "slow/app", "v1", 2, 256<<10)
	proxy.Add(testutil.Fault{Method: "GET", Path: "/blobs/", Delay: delay})
	return proxy, proxy.Host + "/slow/app:v1"
}

func startDaemon(t *testing.T) *servertest.Daemon {
	d := servertest.Start(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(d.Store.Root); err != nil {
			t.Error(err)
		}
	})
	return d
}

// TestRunJobPull: a pull through the daemon streams its progress back and
// returns the image. (Credentials asked of the client: cmd/strata's
// TestLoginLogout in daemon mode.)
func TestRunJobPull(t *testing.T) {
	_, ref := slowImage(t, 0)
	d := startDaemon(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	sink := &countingSink{}
	// Subscribers hear of the image as of one a client created.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := eventsapi.NewEventsClient(d.Conn).Subscribe(sctx, &eventsapi.SubscribeRequest{Filters: []string{`topic~="^/images/"`}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.RunJob(ctx, d.Conn, jobs.Request{Pull: &jobs.PullRequest{Ref: ref}}, jobs.Env{Progress: sink})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || res.Images[0].Name != ref || res.Images[0].Digest == "" {
		t.Fatalf("pull result = %+v", res)
	}
	if img, err := d.Store.DB.Images().Get(ctx, ref); err != nil || img.Target.Digest != res.Images[0].Digest {
		t.Fatalf("image in the daemon's store = %+v, %v", img, err)
	}
	env, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := events.Decode(env.Event); err != nil || env.Topic != events.TopicImageCreate || env.Namespace != "default" || ev.Fields["name"] != ref || !strings.HasSuffix(env.Event.TypeUrl, "ImageCreate") {
		t.Fatalf("event after the pull = %v (%v, %v)", env, ev, err)
	}
	layers := 0
	for id, st := range sink.statuses {
		if st[len(st)-1] != progress.Done && st[len(st)-1] != progress.Exists {
			t.Errorf("item %s ended %v", id, st)
		}
		for _, s := range st {
			if s == progress.Downloading {
				layers++
				break
			}
		}
	}
	if layers < 2 {
		t.Fatalf("progress showed %d items downloading, want the 2 layers at least: %v", layers, sink.statuses)
	}
}

// TestRunJobCancel: cancelling the context cancels the job in the daemon,
// promptly, and leaves no image.
func TestRunJobCancel(t *testing.T) {
	proxy, ref := slowImage(t, time.Minute)
	d := startDaemon(t)
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "default"))
	go func() {
		for proxy.Count("GET", "/blobs/sha256") < 1 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := client.RunJob(ctx, d.Conn, jobs.Request{Pull: &jobs.PullRequest{Ref: ref}}, jobs.Env{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 20*time.Second {
		t.Fatalf("cancelled pull: %v after %s; want context.Canceled, promptly", err, time.Since(start))
	}
	if imgs, err := d.Store.DB.Images().List(namespaces.WithNamespace(context.Background(), "default")); err != nil || len(imgs) != 0 {
		t.Fatalf("images after a cancelled pull: %+v, %v", imgs, err)
	}
}

// TestStopDrainsJobs: a job whose client went away still holds the
// daemon's shutdown until it ends, so the store closes after it.
func TestStopDrainsJobs(t *testing.T) {
	proxy, ref := slowImage(t, 500*time.Millisecond)
	d := startDaemon(t)
	conn, err := client.Dial(d.Address)
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "default")
	done := make(chan error, 1)
	go func() {
		_, err := client.RunJob(ctx, conn, jobs.Request{Pull: &jobs.PullRequest{Ref: ref}}, jobs.Env{})
		done <- err
	}()
	for proxy.Count("GET", "/blobs/sha256") < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close() // the client goes away mid-pull
	if err := <-done; err == nil {
		t.Fatal("RunJob on a closed connection succeeded")
	}
	d.Server.Stop(time.Minute)
	if img, err := d.Store.DB.Images().Get(ctx, ref); err != nil {
		t.Fatalf("the pull did not finish before Stop returned: %v", err)
	} else if img.Target.Digest == "" {
		t.Fatalf("image = %+v", img)
	}
	// A stopping daemon takes no new jobs.
	_, err = client.RunJob(ctx, d.Conn, jobs.Request{GC: &jobs.GCRequest{}}, jobs.Env{})
	if err == nil {
		t.Fatal("a stopped daemon ran a job")
	}
}

// TestRunJobErrors: a malformed request is refused with InvalidArgument;
// a job's error keeps its class across the wire.
func TestRunJobErrors(t *testing.T) {
	d := startDaemon(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if _, err := client.RunJob(ctx, d.Conn, jobs.Request{GC: &jobs.GCRequest{}, Fsck: &jobs.FsckRequest{}}, jobs.Env{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("two jobs in one request: %v", err)
	}
	if _, err := client.RunJob(ctx, d.Conn, jobs.Request{Export: &jobs.ExportRequest{Images: []string{"nope:1"}, Path: "/tmp/x.tar"}}, jobs.Env{}); !errdefs.IsNotFound(err) {
		t.Fatalf("export of a missing image: %v", err)
	}
	if _, err := client.RunJob(ctx, d.Conn, jobs.Request{Import: &jobs.ImportRequest{Path: "relative.tar"}}, jobs.Env{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("import of a relative path: %v", err)
	}
	// Jobs over the whole store need no namespace.
	res, err := client.RunJob(context.Background(), d.Conn, jobs.Request{Info: &jobs.InfoRequest{}}, jobs.Env{})
	if err != nil || res.Info == nil || res.Info.Root != d.Store.Root || res.Info.DefaultSnapshotter == "" {
		t.Fatalf("info = %+v, %v", res.Info, err)
	}
}

// TestRunJobCancelStreamedImport: a streamed import waiting for data is
// cancelled at once (the daemon closes its end of the stream), not when
// the client gives up waiting for the daemon to confirm.
func TestRunJobCancelStreamedImport(t *testing.T) {
	d := startDaemon(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "default"))
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := client.RunJob(ctx, d.Conn, jobs.Request{Import: &jobs.ImportRequest{NoUnpack: true}}, jobs.Env{Input: pr})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "did not confirm") {
		t.Fatalf("cancelled streamed import: %v; want context.Canceled confirmed by the daemon", err)
	}
}
