package testutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a reverse proxy in front of a registry that injects faults:
// error statuses, delays, bodies cut short or corrupted. It streams bodies
// in both directions and records every request it answers.
//
//	reg := StartRegistry(t, RegistryConfig{})
//	p := StartProxy(t, reg.Host)
//	p.Add(Fault{Path: "/blobs/", Times: 1, Status: 503})
//	... pull from p.Host; the first blob request fails, a retry succeeds
//	if p.Count(http.MethodGet, "/blobs/") != 2 { ... }
type Proxy struct {
	// Host is "127.0.0.1:<port>", to be used in place of the upstream's.
	Host string

	upstream  string
	srv       *http.Server
	transport *http.Transport
	done      chan struct{} // closed when the proxy stops: ends delays
	handlers  sync.WaitGroup

	mu     sync.Mutex
	closed bool
	faults []*fault
	record []*Request
}

// Fault says which requests to disturb and how. The zero values of the
// action fields do nothing, so a Fault with only Delay slows requests down
// and one with only Corrupt proxies them with a flipped byte.
type Fault struct {
	Method string // "" = any
	Path   string // substring of the URL path ("/blobs/sha256:…"); "" = any
	Times  int    // how many matching requests it hits; 0 = every one

	// Status answers this status instead of proxying (e.g. 503, 429), with
	// Header and a distribution-spec JSON error body (none for HEAD).
	Status int
	Header http.Header // e.g. Retry-After: 1
	// CutAfter proxies the response but closes the TCP connection after
	// this many body bytes (>0); Content-Length stays the upstream's, so
	// the client sees an unexpected EOF. Bodies no longer than CutAfter
	// pass whole.
	CutAfter int64
	// Corrupt proxies the response but flips one byte of the body (the
	// middle one when the length is known, else the first): same length,
	// another digest.
	Corrupt bool
	// Append proxies the response and sends these bytes after the body,
	// counted in Content-Length (a registry serving a blob longer than
	// its descriptor says).
	Append []byte
	// NoLength drops the upstream's Content-Length: the body goes out
	// chunked, its length unknown until it ends.
	NoLength bool
	Delay    time.Duration // sleep before answering
}

// fault is an added Fault and how many requests it has hit.
type fault struct {
	Fault
	hits int
}

// Request is one request the proxy answered.
type Request struct {
	Method string
	Path   string
	Range  string // the Range header, if any
	Status int    // the status sent; 0 while the answer is pending
	Bytes  int64  // body bytes sent to the client
}

// hopHeaders belong to one connection, not to the message (RFC 9110,
// section 7.6.1); a proxy does not forward them.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// StartProxy starts a reverse proxy on 127.0.0.1 to upstream ("127.0.0.1:port",
// plain HTTP), stopped at cleanup. It passes every end-to-end header both
// ways, rewriting a Location that points at upstream to point at the proxy.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start proxy to %s: %v", upstream, err)
	}
	p := &Proxy{
		Host:     l.Addr().String(),
		upstream: upstream,
		// No compression of our own: bytes pass as the registry sent them.
		transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
		done:      make(chan struct{}),
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve)}
	go p.srv.Serve(l)
	t.Cleanup(p.stop)
	return p
}

// stop closes the listener and every connection, and waits for the
// handlers, which the closed connections cancel.
func (p *Proxy) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	p.srv.Close()
	p.handlers.Wait()
	p.transport.CloseIdleConnections()
}

// Add appends a fault. Faults are checked in order and the first that
// matches a request (and has hits left) applies to it. Add is safe while
// requests run.
func (p *Proxy) Add(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &fault{Fault: f})
}

// Reset drops the faults and the record of requests.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.record = nil, nil
}

// Requests returns the requests answered or being answered since the
// start (or the last Reset), in the order they arrived.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.record))
	for i, r := range p.record {
		out[i] = *r
	}
	return out
}

// Count returns how many requests had method ("" = any) and a path
// containing pathSubstr.
func (p *Proxy) Count(method, pathSubstr string) int {
	n := 0
	for _, r := range p.Requests() {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, pathSubstr) {
			n++
		}
	}
	return n
}

// BytesSent returns the body bytes sent to clients for paths containing
// pathSubstr. Bytes are counted before they are written, so a client that
// has read them finds them counted.
func (p *Proxy) BytesSent(pathSubstr string) int64 {
	var n int64
	for _, r := range p.Requests() {
		if strings.Contains(r.Path, pathSubstr) {
			n += r.Bytes
		}
	}
	return n
}

// match records r and returns the fault that applies to it, if any.
func (p *Proxy) match(r *http.Request) (*Request, Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec := &Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range")}
	p.record = append(p.record, rec)
	for _, f := range p.faults {
		if (f.Method != "" && f.Method != r.Method) || !strings.Contains(r.URL.Path, f.Path) {
			continue
		}
		if f.Times > 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		return rec, f.Fault
	}
	return rec, Fault{}
}

// setStatus and addBytes update a record under the lock: tests read it
// while requests run.
func (p *Proxy) setStatus(rec *Request, status int) {
	p.mu.Lock()
	rec.Status = status
	p.mu.Unlock()
}

func (p *Proxy) addBytes(rec *Request, n int64) {
	p.mu.Lock()
	rec.Bytes += n
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		http.Error(w, "proxy stopped", http.StatusServiceUnavailable)
		return
	}
	p.handlers.Add(1)
	p.mu.Unlock()
	defer p.handlers.Done()

	rec, f := p.match(r)
	if f.Delay > 0 {
		timer := time.NewTimer(f.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		case <-p.done:
			// No answer at all: returning would send an empty 200.
			timer.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	if f.Status != 0 {
		p.answer(w, r, rec, f)
		return
	}
	p.forward(w, r, rec, f)
}

// answer sends f's status, headers and error body instead of proxying.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, rec *Request, f Fault) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	var body []byte
	if r.Method != http.MethodHead && f.Status >= 200 && f.Status != http.StatusNoContent && f.Status != http.StatusNotModified {
		body = fmt.Appendf(nil, `{"errors":[{"code":%q,"message":"fault injected by the test proxy"}]}`+"\n", errorCode(f.Status))
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	p.setStatus(rec, f.Status)
	w.WriteHeader(f.Status)
	p.addBytes(rec, int64(len(body)))
	w.Write(body)
}

// errorCode is the distribution-spec error code for an HTTP status.
func errorCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case status == http.StatusForbidden:
		return "DENIED"
	case status == http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case status >= 500:
		return "UNAVAILABLE"
	default:
		return "UNKNOWN"
	}
}

// forward proxies r to the upstream and streams the answer back, cutting
// or corrupting it as f says.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, rec *Request, f Fault) {
	var body io.Reader = r.Body
	if r.ContentLength == 0 {
		body = http.NoBody
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.upstream+r.URL.RequestURI(), body)
	if err != nil {
		p.fail(w, rec, fmt.Errorf("build request to %s: %w", p.upstream, err))
		return
	}
	out.ContentLength = r.ContentLength
	copyHeader(out.Header, r.Header)
	// The transport answers 100-continue itself: the server side already did.
	out.Header.Del("Expect")
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.fail(w, rec, fmt.Errorf("%s %s via %s: %w", r.Method, r.URL.Path, p.upstream, err))
		return
	}
	defer resp.Body.Close()

	copyHeader(w.Header(), resp.Header)
	if loc := resp.Header.Get("Location"); loc != "" {
		for _, prefix := range []string{"http://" + p.upstream, "//" + p.upstream} {
			if rest, ok := strings.CutPrefix(loc, prefix); ok && (rest == "" || strings.ContainsAny(rest[:1], "/?#")) {
				w.Header().Set("Location", strings.TrimSuffix(prefix, p.upstream)+p.Host+rest)
			}
		}
	}
	w.Header().Del("Content-Length")
	if resp.ContentLength >= 0 && !f.NoLength {
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength+int64(len(f.Append))))
	}
	p.setStatus(rec, resp.StatusCode)
	w.WriteHeader(resp.StatusCode)

	flip := int64(-1)
	if f.Corrupt {
		flip = 0
		if resp.ContentLength > 0 {
			flip = resp.ContentLength / 2
		}
	}
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		want := int64(len(buf))
		if f.CutAfter > 0 && f.CutAfter-sent < want {
			want = f.CutAfter - sent
		}
		if want == 0 {
			// CutAfter bytes are out: the cut only happens when the body
			// has more to give.
			if n, _ := io.ReadFull(resp.Body, buf[:1]); n == 0 {
				return
			}
			p.cut(rc)
			return
		}
		n, rerr := resp.Body.Read(buf[:want])
		if n > 0 {
			if flip >= sent && flip < sent+int64(n) {
				buf[flip-sent] ^= 0xff
			}
			p.addBytes(rec, int64(n))
			wn, werr := w.Write(buf[:n])
			sent += int64(wn)
			if werr != nil {
				p.addBytes(rec, int64(wn-n))
				return
			}
		}
		if rerr != nil {
			// An upstream failure mid-body can only be passed on by
			// breaking the connection: the status is gone.
			if !errors.Is(rerr, io.EOF) {
				panic(http.ErrAbortHandler)
			}
			if len(f.Append) > 0 {
				p.addBytes(rec, int64(len(f.Append)))
				w.Write(f.Append)
			}
			return
		}
	}
}

// cut sends what is buffered and closes the client's connection without
// finishing the response.
func (p *Proxy) cut(rc *http.ResponseController) {
	if err := rc.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// fail answers 502 when the upstream cannot be reached.
func (p *Proxy) fail(w http.ResponseWriter, rec *Request, err error) {
	msg := fmt.Sprintf("test proxy: %v\n", err)
	p.setStatus(rec, http.StatusBadGateway)
	p.addBytes(rec, int64(len(msg)))
	http.Error(w, msg, http.StatusBadGateway)
}

// copyHeader adds the end-to-end headers of src to dst.
func copyHeader(dst, src http.Header) {
	drop := map[string]bool{}
	for _, h := range hopHeaders {
		drop[h] = true
	}
	for _, v := range src.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	for k, vs := range src {
		if drop[http.CanonicalHeaderKey(k)] {
			continue
		}
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}
