package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// proxyFixture is a registry holding one blob, with a proxy in front.
type proxyFixture struct {
	reg   *Registry
	proxy *Proxy
	data  []byte
	url   string // of the blob, through the proxy
	path  string // of the blob
}

func startProxyFixture(t *testing.T) proxyFixture {
	t.Helper()
	reg := StartRegistry(t, RegistryConfig{})
	data := make([]byte, 100<<10)
	rand.NewChaCha8([32]byte{1}).Read(data)
	desc := PushBlob(t, reg.Host, "proxy/test", data, "application/octet-stream")
	p := StartProxy(t, reg.Host)
	path := "/v2/proxy/test/blobs/" + desc.Digest.String()
	return proxyFixture{reg: reg, proxy: p, data: data, url: "http://" + p.Host + path, path: path}
}

// noRedirect shows redirects as they come.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// proxyGet sends a request and reads the whole body, returning the read error
// rather than failing.
func proxyGet(t *testing.T, method, url string, header http.Header) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestProxyPassesThrough(t *testing.T) {
	f := startProxyFixture(t)

	resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.data) {
		t.Fatalf("GET blob = %s, %d bytes, %v; want 200, %d bytes", resp.Status, len(body), err, len(f.data))
	}
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != digest.FromBytes(f.data).String() {
		t.Errorf("Docker-Content-Digest = %q, want %s", dg, digest.FromBytes(f.data))
	}

	resp, body, err = proxyGet(t, http.MethodHead, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(f.data)) {
		t.Fatalf("HEAD blob = %s, Content-Length %d, body %d bytes, %v; want 200, %d, none", resp.Status, resp.ContentLength, len(body), err, len(f.data))
	}

	resp, body, err = proxyGet(t, http.MethodGet, f.url, http.Header{"Range": {"bytes=1000-40999"}})
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, f.data[1000:41000]) {
		t.Fatalf("GET blob with Range = %s, %d bytes, %v; want 206, 40000 bytes", resp.Status, len(body), err)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-40999/%d", len(f.data)) {
		t.Errorf("Content-Range = %q", cr)
	}

	// An upload through the proxy: the registry's Location must lead back
	// to the proxy, and the request body must reach the registry.
	resp, _, err = proxyGet(t, http.MethodPost, "http://"+f.proxy.Host+"/v2/proxy/test/blobs/uploads/", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload = %s, %v", resp.Status, err)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "http://"+f.proxy.Host+"/v2/") {
		t.Errorf("Location = %q, want it at the proxy %s", loc, f.proxy.Host)
	}
	up := PushBlob(t, f.proxy.Host, "proxy/test", []byte("uploaded through the proxy"), "application/octet-stream")
	if _, body, err := proxyGet(t, http.MethodGet, "http://"+f.reg.Host+"/v2/proxy/test/blobs/"+up.Digest.String(), nil); err != nil || string(body) != "uploaded through the proxy" {
		t.Errorf("blob uploaded through the proxy reads back %q, %v", body, err)
	}

	want := []Request{
		{Method: http.MethodGet, Path: f.path, Status: 200, Bytes: int64(len(f.data))},
		{Method: http.MethodHead, Path: f.path, Status: 200},
		{Method: http.MethodGet, Path: f.path, Range: "bytes=1000-40999", Status: 206, Bytes: 40000},
		{Method: http.MethodPost, Path: "/v2/proxy/test/blobs/uploads/", Status: 202},
	}
	got := f.proxy.Requests()
	if len(got) < len(want)+2 {
		t.Fatalf("Requests() = %+v, want %d or more", got, len(want)+2)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("Requests()[%d] = %+v, want %+v", i, got[i], w)
		}
	}
	if n := f.proxy.Count(http.MethodGet, "/blobs/sha256:"); n != 2 {
		t.Errorf("Count(GET, /blobs/sha256:) = %d, want 2", n)
	}
	if n := f.proxy.Count("", f.path); n != 3 {
		t.Errorf("Count(\"\", %s) = %d, want 3", f.path, n)
	}
	if n := f.proxy.Count(http.MethodPut, "/blobs/uploads/"); n != 1 {
		t.Errorf("Count(PUT, /blobs/uploads/) = %d, want 1", n)
	}
	if n := f.proxy.BytesSent(f.path); n != int64(len(f.data))+40000 {
		t.Errorf("BytesSent(%s) = %d, want %d", f.path, n, len(f.data)+40000)
	}
	f.proxy.Reset()
	if r := f.proxy.Requests(); len(r) != 0 {
		t.Errorf("Requests() after Reset = %+v", r)
	}
}

// TestProxyHeaders checks both directions against a server that shows
// what it received: Authorization and Range go up, Location comes back
// rewritten, hop-by-hop headers stay behind.
func TestProxyHeaders(t *testing.T) {
	var upstream *httptest.Server
	upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"Authorization", "Range", "X-Custom", "X-Hop"} {
			w.Header().Set("Got-"+k, r.Header.Get(k))
		}
		w.Header().Set("Www-Authenticate", `Bearer realm="http://auth.example/token"`)
		switch r.URL.Path {
		case "/upstream":
			w.Header().Set("Location", "http://"+upstream.Listener.Addr().String()+"/next?x=1")
		case "/elsewhere":
			w.Header().Set("Location", "http://other.example:5000/next")
		case "/relative":
			w.Header().Set("Location", "/v2/next")
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(upstream.Close)
	p := StartProxy(t, upstream.Listener.Addr().String())

	tests := []struct {
		path, location string
	}{
		{"/upstream", "http://" + p.Host + "/next?x=1"},
		{"/elsewhere", "http://other.example:5000/next"},
		{"/relative", "/v2/next"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/"), func(t *testing.T) {
			resp, _, err := proxyGet(t, http.MethodGet, "http://"+p.Host+tt.path, http.Header{
				"Authorization": {"Bearer sekrit"}, "Range": {"bytes=5-"}, "X-Custom": {"a"},
				"Connection": {"X-Hop"}, "X-Hop": {"dropped"},
			})
			if err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
				t.Fatalf("GET %s = %s, %v", tt.path, resp.Status, err)
			}
			for k, want := range map[string]string{"Got-Authorization": "Bearer sekrit", "Got-Range": "bytes=5-", "Got-X-Custom": "a",
				"Got-X-Hop": "", "Location": tt.location, "Www-Authenticate": `Bearer realm="http://auth.example/token"`} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestProxyStatusOnce(t *testing.T) {
	f := startProxyFixture(t)
	f.proxy.Add(Fault{Method: http.MethodGet, Path: "/blobs/", Times: 1, Status: http.StatusServiceUnavailable})

	resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"UNAVAILABLE"`) {
		t.Fatalf("first GET = %s, %q, %v; want 503 with an UNAVAILABLE error", resp.Status, body, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	resp, body, err = proxyGet(t, http.MethodGet, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.data) {
		t.Fatalf("second GET = %s, %d bytes, %v; want 200 and the blob", resp.Status, len(body), err)
	}
	got := f.proxy.Requests()
	if len(got) != 2 || got[0].Status != 503 || got[1].Status != 200 || got[1].Bytes != int64(len(f.data)) {
		t.Errorf("Requests() = %+v, want a 503 then a 200 of %d bytes", got, len(f.data))
	}
	if n := f.proxy.Count(http.MethodGet, f.path); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

func TestProxyTooManyRequests(t *testing.T) {
	f := startProxyFixture(t)
	// The first fault matches no request: faults are checked in order.
	f.proxy.Add(Fault{Method: http.MethodPut, Status: http.StatusInternalServerError})
	f.proxy.Add(Fault{Path: f.path, Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}})

	for i := range 2 {
		resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"TOOMANYREQUESTS"`) {
			t.Fatalf("GET %d = %s, %q, %v; want 429 with TOOMANYREQUESTS", i, resp.Status, body, err)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("GET %d: Retry-After = %q, want 1", i, ra)
		}
	}
	resp, body, err := proxyGet(t, http.MethodHead, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || len(body) != 0 {
		t.Fatalf("HEAD = %s, %d bytes, %v; want 429 without a body", resp.Status, len(body), err)
	}
	f.proxy.Reset()
	if resp, body, err := proxyGet(t, http.MethodGet, f.url, nil); err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.data) {
		t.Fatalf("GET after Reset = %s, %d bytes, %v; want 200 and the blob", resp.Status, len(body), err)
	}
	if n := f.proxy.Count("", ""); n != 1 {
		t.Errorf("Count after Reset = %d, want 1", n)
	}
}

func TestProxyCutAfter(t *testing.T) {
	f := startProxyFixture(t)
	for _, n := range []int64{1, 1000, 40000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f.proxy.Reset()
			f.proxy.Add(Fault{Path: f.path, Times: 1, CutAfter: n})
			resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(f.data)) {
				t.Fatalf("GET = %s, Content-Length %d; want 200, %d", resp.Status, resp.ContentLength, len(f.data))
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error = %v, want unexpected EOF", err)
			}
			if !bytes.Equal(body, f.data[:n]) {
				t.Errorf("read %d bytes before the cut, want the first %d of the blob", len(body), n)
			}
			if got := f.proxy.BytesSent(f.path); got != n {
				t.Errorf("BytesSent = %d, want %d", got, n)
			}
			// Times: 1, so the next request gets it all.
			if _, body, err := proxyGet(t, http.MethodGet, f.url, nil); err != nil || !bytes.Equal(body, f.data) {
				t.Errorf("GET after the cut = %d bytes, %v", len(body), err)
			}
		})
	}
	t.Run("range", func(t *testing.T) {
		f.proxy.Reset()
		f.proxy.Add(Fault{Path: f.path, CutAfter: 10})
		resp, body, err := proxyGet(t, http.MethodGet, f.url, http.Header{"Range": {"bytes=100-199"}})
		if resp.StatusCode != http.StatusPartialContent || !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(body, f.data[100:110]) {
			t.Errorf("GET range = %s, %d bytes, %v; want 206, 10 bytes, unexpected EOF", resp.Status, len(body), err)
		}
	})
	t.Run("short body", func(t *testing.T) {
		f.proxy.Reset()
		f.proxy.Add(Fault{Path: f.path, CutAfter: 100})
		if _, body, err := proxyGet(t, http.MethodGet, f.url, http.Header{"Range": {"bytes=0-99"}}); err != nil || !bytes.Equal(body, f.data[:100]) {
			t.Errorf("GET of exactly CutAfter bytes = %d bytes, %v; want it whole", len(body), err)
		}
	})
}

func TestProxyCorrupt(t *testing.T) {
	f := startProxyFixture(t)
	f.proxy.Add(Fault{Method: http.MethodGet, Path: f.path, Corrupt: true})
	resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
	if err != nil || resp.StatusCode != http.StatusOK || len(body) != len(f.data) {
		t.Fatalf("GET = %s, %d bytes, %v; want 200, %d bytes", resp.Status, len(body), err, len(f.data))
	}
	if digest.FromBytes(body) == digest.FromBytes(f.data) {
		t.Fatal("corrupted body has the blob's digest")
	}
	diff := 0
	for i := range body {
		if body[i] != f.data[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes differ, want 1", diff)
	}
	if resp.Header.Get("Docker-Content-Digest") != digest.FromBytes(f.data).String() {
		t.Errorf("Docker-Content-Digest = %q, want the upstream's", resp.Header.Get("Docker-Content-Digest"))
	}
	if _, body, err := proxyGet(t, http.MethodGet, f.url, http.Header{"Range": {"bytes=0-0"}}); err != nil || len(body) != 1 || body[0] == f.data[0] {
		t.Errorf("GET of one byte = %x, %v; want it flipped from %x", body, err, f.data[:1])
	}
}

// TestProxyAppend: Append sends bytes after the body, counted in
// Content-Length unless NoLength drops it (the body then goes chunked).
func TestProxyAppend(t *testing.T) {
	f := startProxyFixture(t)
	extra := []byte("surplus")
	want := append(append([]byte(nil), f.data...), extra...)
	for _, noLength := range []bool{false, true} {
		f.proxy.Reset()
		f.proxy.Add(Fault{Method: http.MethodGet, Path: f.path, Append: extra, NoLength: noLength})
		resp, body, err := proxyGet(t, http.MethodGet, f.url, nil)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("GET (NoLength %v) = %s, %d bytes, %v; want 200 and the blob followed by %q", noLength, resp.Status, len(body), err, extra)
		}
		wantLength := int64(len(want))
		if noLength {
			wantLength = -1
		}
		if resp.ContentLength != wantLength {
			t.Errorf("Content-Length (NoLength %v) = %d, want %d", noLength, resp.ContentLength, wantLength)
		}
	}
	// On a Range request too.
	f.proxy.Reset()
	f.proxy.Add(Fault{Method: http.MethodGet, Path: f.path, Append: extra})
	resp, body, err := proxyGet(t, http.MethodGet, f.url, http.Header{"Range": {"bytes=10-"}})
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[10:]) || resp.ContentLength != int64(len(want)-10) {
		t.Fatalf("GET from byte 10 = %s, %d bytes (Content-Length %d), %v", resp.Status, len(body), resp.ContentLength, err)
	}
}

// TestProxyDelay: a delayed request is answered, and one still waiting
// ends when the client gives up or the proxy stops.
func TestProxyDelay(t *testing.T) {
	f := startProxyFixture(t)
	f.proxy.Add(Fault{Path: f.path, Times: 1, Delay: 10 * time.Millisecond})
	if _, body, err := proxyGet(t, http.MethodGet, f.url, nil); err != nil || !bytes.Equal(body, f.data) {
		t.Fatalf("delayed GET = %d bytes, %v", len(body), err)
	}

	p := StartProxy(t, f.reg.Host)
	p.Add(Fault{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Host+f.path, nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for p.Count("", "") == 0 {
		time.Sleep(time.Millisecond)
	}
	p.stop()
	if err := <-errc; err == nil {
		t.Error("request waiting in a delay succeeded after the proxy stopped")
	}
}

// TestProxyConcurrent adds faults while requests run; run with -race.
func TestProxyConcurrent(t *testing.T) {
	f := startProxyFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				f.proxy.Add(Fault{Path: "/no/such/path", Status: 500})
			}
			resp, err := http.Get(f.url)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, f.data) {
				errs <- fmt.Errorf("GET %d: %d bytes, %v", i, len(b), err)
			}
			f.proxy.Requests()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.proxy.Count(http.MethodGet, f.path); n != 16 {
		t.Errorf("Count = %d, want 16", n)
	}
	if n := f.proxy.BytesSent(f.path); n != 16*int64(len(f.data)) {
		t.Errorf("BytesSent = %d, want %d", n, 16*len(f.data))
	}
}
