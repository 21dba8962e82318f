package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// TestBlobRedirect pulls from a registry front that wants Basic
// credentials and sends blob downloads to storage on another host (a
// redirect, as registries do to S3 or a CDN): the storage never sees the
// registry's credentials.
func TestBlobRedirect(t *testing.T) {
	const user, password = "dave", "redirect-secret-0c3b"
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "redirect/app", "v1")

	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusFound, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var (
				mu     sync.Mutex
				served []digest.Digest
				leaked []string
			)
			storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				d := digest.Digest(strings.TrimPrefix(r.URL.Path, "/storage/"))
				mu.Lock()
				served = append(served, d)
				for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
					if v := r.Header.Get(h); v != "" {
						leaked = append(leaked, h+": "+v)
					}
				}
				mu.Unlock()
				b, ok := fx.Blobs[d]
				if !ok {
					http.NotFound(w, r)
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
			}))
			t.Cleanup(storage.Close)

			target, err := url.Parse("http://" + reg.Host)
			if err != nil {
				t.Fatal(err)
			}
			toRegistry := httputil.NewSingleHostReverseProxy(target)
			var authorized atomic.Int64
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
					w.Header().Set("WWW-Authenticate", `Basic realm="strata-test-front"`)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
					return
				}
				authorized.Add(1)
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
					http.Redirect(w, r, storage.URL+"/storage/"+path.Base(r.URL.Path)+"?X-Amz-Signature=test", status)
					return
				}
				toRegistry.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)

			creds := &staticCredentials{user: user, password: password}
			e := newEnv(t, docker.Options{PlainHTTP: true, Credentials: creds.get})
			e.pullImage(front.Listener.Addr().String()+"/redirect/app:v1", fx)

			mu.Lock()
			defer mu.Unlock()
			if len(leaked) > 0 {
				t.Fatalf("the storage host was sent the registry's credentials: %q", leaked)
			}
			if authorized.Load() == 0 {
				t.Fatal("no request to the front carried credentials")
			}
			m := manifestOf(t, fx)
			for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				found := false
				for _, s := range served {
					found = found || s == d.Digest
				}
				if !found {
					t.Errorf("blob %s was not downloaded from the storage host (it served %v)", d.Digest, served)
				}
			}
		})
	}
}

// readBlob opens desc in ref's repository through r and reads it whole.
func readBlob(ctx context.Context, r *docker.Resolver, ref reference.Reference, desc ocispec.Descriptor) ([]byte, error) {
	rp, err := r.Repository(ref)
	if err != nil {
		return nil, err
	}
	rc, err := rp.OpenBlob(ctx, desc, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// idleTimeout is the resolvers' IdleTimeout in TestIdleTimeout; the
// faults last 20 times longer.
const idleTimeout = 500 * time.Millisecond

// wantIdleFailure checks the error of a read that stalled on every
// attempt: it names the blob and says the transfer stalled, and it is not
// a cancellation, which callers take for their own.
func wantIdleFailure(t *testing.T, err error, d digest.Digest) {
	t.Helper()
	t.Logf("read of a blob stalling on every request = %v", err)
	if err == nil {
		t.Fatal("the read of a blob stalling on every request succeeded")
	}
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, d.String()) || errors.Is(err, context.Canceled) ||
		!(strings.Contains(msg, "idle") || strings.Contains(msg, "stall") || strings.Contains(msg, "no byte")) {
		t.Fatalf("read of a blob stalling on every request = %v; want an error naming %s and the stall, not context.Canceled", err, d)
	}
}

// TestIdleTimeout stalls blob transfers for longer than the resolver's
// IdleTimeout: a stall on one request is resumed from where it stopped,
// a stall on every request fails with an error that says so.
func TestIdleTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	opts := docker.Options{PlainHTTP: true, IdleTimeout: idleTimeout, RetryBase: 10 * time.Millisecond}

	t.Run("no answer", func(t *testing.T) {
		reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
		fx := testutil.PushRandomImage(t, reg.Host, "idle/app", "v1", 1, 1<<20)
		layer := manifestOf(t, fx).Layers[0]
		proxy := testutil.StartProxy(t, reg.Host)
		ref := mustRef(t, proxy.Host+"/idle/app:v1")
		blobPath := "/blobs/" + layer.Digest.String()

		t.Run("once", func(t *testing.T) {
			proxy.Reset()
			proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Times: 1, Delay: 20 * idleTimeout})
			b, err := readBlob(ctx, docker.NewResolver(opts), ref, layer)
			if err != nil || digest.FromBytes(b) != layer.Digest {
				t.Fatalf("read of a blob whose first request went unanswered = %d bytes, %v; want %s", len(b), err, layer.Digest)
			}
			if n := proxy.Count(http.MethodGet, blobPath); n < 2 {
				t.Fatalf("the blob was asked for %d times: the client waited out a request that answered nothing for %v, longer than its IdleTimeout of %v",
					n, 20*idleTimeout, idleTimeout)
			}
		})
		t.Run("every time", func(t *testing.T) {
			proxy.Reset()
			proxy.Add(testutil.Fault{Method: http.MethodGet, Path: blobPath, Delay: 20 * idleTimeout})
			_, err := readBlob(ctx, docker.NewResolver(opts), ref, layer)
			wantIdleFailure(t, err, layer.Digest)
		})
	})

	t.Run("stall mid-body", func(t *testing.T) {
		for _, every := range []bool{false, true} {
			name := "once"
			if every {
				name = "every time"
			}
			t.Run(name, func(t *testing.T) {
				s := startStallingServer(t, every)
				b, err := readBlob(ctx, docker.NewResolver(opts), mustRef(t, s.host+"/stall/app:v1"), s.desc)
				if every {
					wantIdleFailure(t, err, s.desc.Digest)
					return
				}
				if err != nil || digest.FromBytes(b) != s.desc.Digest {
					t.Fatalf("read of a blob stalling once = %d bytes, %v; want %s", len(b), err, s.desc.Digest)
				}
				if got, want := s.ranges(), []string{"", fmt.Sprintf("bytes=%d-", s.stallAt)}; !slices.Equal(got, want) {
					t.Fatalf("requests with Range %q, want %q: the read should resume where the stall began", got, want)
				}
			})
		}
	})
}

// stallingServer serves one blob of 1 MiB at /v2/stall/app/blobs/<digest>,
// honouring Range. A response stops after byte stallAt of the blob and
// then sends nothing until the client goes away: the first response only,
// or every one.
type stallingServer struct {
	host    string
	desc    ocispec.Descriptor
	data    []byte
	stallAt int64
	every   bool

	mu  sync.Mutex
	rgs []string // the Range header of each request
}

func startStallingServer(t *testing.T, every bool) *stallingServer {
	t.Helper()
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'s', 't', 'a', 'l', 'l'}).Read(data)
	s := &stallingServer{
		desc:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))},
		data:    data,
		stallAt: 256 << 10,
		every:   every,
	}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(s.serve(stop)))
	// Cleanups run last first: stop ends the stalls, then Close waits.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	s.host = srv.Listener.Addr().String()
	return s
}

func (s *stallingServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rgs...)
}

func (s *stallingServer) serve(stop <-chan struct{}) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/stall/app/blobs/"+s.desc.Digest.String() {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		first := len(s.rgs) == 0
		s.rgs = append(s.rgs, r.Header.Get("Range"))
		s.mu.Unlock()
		var start int64
		if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
			if err != nil || n < 0 || n > s.desc.Size {
				http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			start = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(s.desc.Size-start, 10))
		if start > 0 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, s.desc.Size-1, s.desc.Size))
			w.WriteHeader(http.StatusPartialContent)
		}
		if (!first && !s.every) || start > s.stallAt {
			w.Write(s.data[start:])
			return
		}
		w.Write(s.data[start:s.stallAt])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		// Never complete the response: the connection is dropped.
		panic(http.ErrAbortHandler)
	}
}
