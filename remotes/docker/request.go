package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// request describes one registry call, rebuilt for every attempt.
type request struct {
	method string
	// path is below the endpoint's base ("/<repo>/manifests/<ref>"), or
	// url is absolute (an upload location).
	path, url string
	header    http.Header
	// body returns a fresh body for each attempt; nil for none. A body
	// that cannot be replayed returns an error on the second call.
	body   func() (io.ReadCloser, error)
	length int64
	scopes []string
	// noRetry: do not retry on status (uploads are not idempotent).
	noRetry bool
	// fastFail: another host follows (a mirror failing): no retries.
	fastFail bool
}

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// retryable statuses: the registry is overloaded or restarting.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableError: connection-level failures worth another attempt; never
// certificate problems, which another attempt does not mend.
func retryableError(err error) bool {
	var (
		cve   *tls.CertificateVerificationError
		alert tls.AlertError
		ua    x509.UnknownAuthorityError
		hn    x509.HostnameError
		ci    x509.CertificateInvalidError
		rhe   tls.RecordHeaderError
	)
	if errors.As(err, &cve) || errors.As(err, &alert) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &rhe) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "broken pipe", "connection refused", "server closed idle connection", "timeout awaiting response headers", "stream error"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// joinHostErrors reports the failure of every host tried: the last one's
// (the upstream's) classifies the error.
func joinHostErrors(errs []error) error {
	last := errs[len(errs)-1]
	if len(errs) == 1 {
		return last
	}
	var others []string
	for _, e := range errs[:len(errs)-1] {
		others = append(others, e.Error())
	}
	return fmt.Errorf("%w (before that: %s)", last, strings.Join(others, "; "))
}

// backoff returns the wait before attempt n (1-based): exponential from
// base, capped at max, with full jitter in its upper half.
func (r *Resolver) backoff(n int) time.Duration {
	d := r.opts.RetryBase << min(n-1, 20)
	if d > r.opts.RetryMax || d <= 0 {
		d = r.opts.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// maxRetryAfter bounds how long a Retry-After header can make us wait.
const maxRetryAfter = 60 * time.Second

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return max(0, min(d, maxRetryAfter)), true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do sends rq to ep, authorizing it, answering one auth challenge, and
// retrying connection errors, 5xx and 429 with backoff. The response
// returned may have any status; the caller checks it.
func (repo *Repository) do(ctx context.Context, ep *endpoint, rq request) (*http.Response, error) {
	r := repo.r
	challenged := false
	for attempt := 0; ; attempt++ {
		u := rq.url
		if u == "" {
			u = ep.base() + rq.path
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, u, nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", rq.method, u, err)
		}
		for k, v := range ep.Header {
			req.Header[k] = v
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", r.opts.UserAgent)
		if rq.body != nil {
			body, err := rq.body()
			if err != nil {
				return nil, err
			}
			req.Body = body
			req.ContentLength = rq.length
		}
		if err := r.auth.Authorize(ctx, req, rq.scopes); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := ep.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if ep.downgrade(err) {
				r.log.Debug("registry answers plain HTTP; using http", "host", ep.Host.Host)
				attempt--
				continue
			}
			if retryableError(err) && attempt < r.opts.Retries && !rq.fastFail {
				d := r.backoff(attempt + 1)
				r.log.Debug("registry request failed; retrying", "method", rq.method, "url", req.URL.Redacted(), "error", err, "in", d)
				if err := sleep(ctx, d); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("%s %s: %w", rq.method, req.URL.Redacted(), err)
		}
		if resp.StatusCode == http.StatusUnauthorized && !challenged {
			challenged = true
			err := r.auth.Challenge(ctx, resp, rq.scopes)
			drain(resp)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", rq.method, req.URL.Redacted(), err)
			}
			attempt--
			continue
		}
		if retryableStatus(resp.StatusCode) && !rq.noRetry && !rq.fastFail && attempt < r.opts.Retries {
			d, ok := retryAfter(resp.Header)
			if !ok {
				d = r.backoff(attempt + 1)
			}
			r.log.Debug("registry busy; retrying", "method", rq.method, "url", req.URL.Redacted(), "status", resp.StatusCode, "in", d)
			drain(resp)
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

// drain reads a little of a response we do not use, so its connection can
// be reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

// registryErrors is the error body of the distribution spec.
type registryErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail,omitempty"`
	} `json:"errors"`
}

// statusError turns an unexpected response into an error naming what was
// asked (what), the status and the registry's own error codes, mapped to
// errdefs classes. It closes the body.
func statusError(resp *http.Response, what string) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := ""
	var re registryErrors
	if json.Unmarshal(b, &re) == nil && len(re.Errors) > 0 {
		var parts []string
		for _, e := range re.Errors {
			p := e.Code
			if e.Message != "" {
				p += ": " + e.Message
			}
			parts = append(parts, p)
		}
		msg = strings.Join(parts, "; ")
	} else if s := strings.TrimSpace(string(b)); s != "" && len(s) < 200 && !strings.ContainsAny(s, "<>") {
		msg = s
	}
	var class error
	switch c := resp.StatusCode; {
	case c == http.StatusNotFound:
		class = errdefs.ErrNotFound
	case c == http.StatusUnauthorized:
		class = errdefs.ErrUnauthenticated
	case c == http.StatusForbidden:
		class = errdefs.ErrPermissionDenied
	case c == http.StatusTooManyRequests || c >= 500:
		class = errdefs.ErrUnavailable
	case c == http.StatusBadRequest || c == http.StatusRequestEntityTooLarge:
		class = errdefs.ErrInvalidArgument
	case c == http.StatusMethodNotAllowed:
		class = errdefs.ErrNotImplemented
	default:
		class = errdefs.ErrUnknown
	}
	if msg != "" {
		return fmt.Errorf("%s: %s (%s): %w", what, resp.Status, msg, class)
	}
	return fmt.Errorf("%s: %s: %w", what, resp.Status, class)
}
