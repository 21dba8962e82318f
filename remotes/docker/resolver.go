// Package docker is strata's registry client for the OCI distribution spec
// (v1.1) and Docker's registry v2 API: resolving tags, fetching manifests
// and blobs (resumable, verified by the caller as bytes stream), pushing,
// with hosts.toml mirrors, registry auth, TLS and bounded retries.
package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker/auth"
	"github.com/strata-oci/strata/remotes/docker/config"
)

// Options configure a Resolver.
type Options struct {
	// HostsDir holds certs.d-style <host>/hosts.toml files; "" for none.
	HostsDir string
	// PlainHTTP talks plain HTTP to every registry not configured
	// otherwise by a hosts.toml (--plain-http).
	PlainHTTP bool
	// Credentials looks up registry credentials; nil for anonymous.
	Credentials auth.Credentials
	// UserAgent is sent with every request.
	UserAgent string
	Logger    *slog.Logger
	// Retries bounds the attempts after the first on connection errors,
	// 5xx and 429 (default 5); RetryBase is the first backoff (200ms),
	// doubled with jitter each time, capped at RetryMax (10s).
	Retries   int
	RetryBase time.Duration
	RetryMax  time.Duration
	// IdleTimeout fails a transfer that moves no byte for this long
	// (default 60s); a slow transfer that progresses is never cut.
	IdleTimeout time.Duration
	// ChunkSize > 0 uploads blobs larger than it in PATCH chunks of that
	// size; 0 uploads each blob in one PUT.
	ChunkSize int64
}

// Resolver resolves references and hands out repositories. It is safe for
// concurrent use and meant to be shared: it keeps connections, tokens and
// hosts.toml lookups.
type Resolver struct {
	opts Options
	auth *auth.Authorizer
	log  *slog.Logger

	mu      sync.Mutex
	hosts   map[string][]*endpoint // registry host → endpoints in order
	clients map[string]*http.Client

	manifests manifestCache
}

// NewResolver returns a Resolver with opts.
func NewResolver(opts Options) *Resolver {
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.RetryBase == 0 {
		opts.RetryBase = 200 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 10 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "strata"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{opts: opts, log: log, hosts: map[string][]*endpoint{}, clients: map[string]*http.Client{}}
	// Token requests go through a client with system roots; realms are
	// public token services.
	r.auth = auth.NewAuthorizer(r.newClient(&tls.Config{MinVersion: tls.VersionTLS12}), opts.Credentials)
	return r
}

// endpoint is one host to try for a registry, with its client.
type endpoint struct {
	config.Host
	client *http.Client
	// fallback: the scheme was not configured; https is tried and, on a
	// loopback host that answers plain HTTP, http is used from then on.
	fallback bool
	mu       sync.Mutex
	// sch is the scheme in use: Host.Scheme, or http after a downgrade.
	// Host itself is never written once shared.
	sch string
}

func (e *endpoint) scheme() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sch
}

func (e *endpoint) base() string {
	return e.scheme() + "://" + e.Host.Host + e.Path
}

// isLoopback reports whether host (with or without port) is localhost or a
// loopback address: containerd's rule for allowing plain HTTP.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// endpoints returns the hosts to use for registry, in order.
func (r *Resolver) endpoints(registry string) ([]*endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if eps, ok := r.hosts[registry]; ok {
		return eps, nil
	}
	hosts, err := config.ForHost(r.opts.HostsDir, registry)
	if err != nil {
		return nil, err
	}
	configured := false
	if r.opts.HostsDir != "" {
		for _, d := range config.HostDirs(registry) {
			if _, err := os.Stat(r.opts.HostsDir + "/" + d + "/hosts.toml"); err == nil {
				configured = true
				break
			}
		}
	}
	var eps []*endpoint
	for _, h := range hosts {
		ep := &endpoint{Host: h, sch: h.Scheme}
		if !configured {
			switch {
			case r.opts.PlainHTTP:
				ep.sch = "http"
			case isLoopback(h.Host):
				ep.fallback = true
			}
		}
		c, err := r.client(h)
		if err != nil {
			return nil, err
		}
		ep.client = c
		eps = append(eps, ep)
	}
	r.hosts[registry] = eps
	return eps, nil
}

// client returns the HTTP client for a host's TLS settings; hosts with the
// same settings share one (and its connections).
func (r *Resolver) client(h config.Host) (*http.Client, error) {
	key := fmt.Sprint(h.CAs, h.ClientPairs, h.SkipVerify)
	if c, ok := r.clients[key]; ok {
		return c, nil
	}
	var err error
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: h.SkipVerify} //nolint:gosec // skip_verify is the user's explicit choice in hosts.toml
	if len(h.CAs) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range h.CAs {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("registry %s: CA file: %w", h.Host, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: CA file %s: no PEM certificate in it", h.Host, f)
			}
		}
		tc.RootCAs = pool
	}
	for _, p := range h.ClientPairs {
		var cert tls.Certificate
		if p[1] == "" {
			// Certificate and key in one file.
			pem, rerr := os.ReadFile(p[0])
			if rerr != nil {
				return nil, fmt.Errorf("registry %s: client certificate: %w", h.Host, rerr)
			}
			cert, err = tls.X509KeyPair(pem, pem)
		} else {
			cert, err = tls.LoadX509KeyPair(p[0], p[1])
		}
		if err != nil {
			return nil, fmt.Errorf("registry %s: client certificate %s: %w", h.Host, p[0], err)
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	c := r.newClient(tc)
	r.clients[key] = c
	return c, nil
}

func (r *Resolver) newClient(tc *tls.Config) *http.Client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: r.opts.IdleTimeout,
		ExpectContinueTimeout: 5 * time.Second,
		// Layers are compressed already; asking for gzip would make Go
		// decompress transparently and break digests.
		DisableCompression: true,
		ReadBufferSize:     256 << 10,
		WriteBufferSize:    256 << 10,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect bounds redirects. Go drops the Authorization header when a
// redirect leaves the host (blob storage on another domain), which is what
// keeps registry tokens from leaking to storage.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("%s: more than 10 redirects", via[0].URL.Redacted())
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme == "http" && !isLoopback(req.URL.Host) {
		return fmt.Errorf("%s: refusing redirect from https to plain http %s", via[0].URL.Redacted(), req.URL.Redacted())
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// Repository is one repository of a registry, through the endpoints
// hosts.toml gives for it.
type Repository struct {
	r   *Resolver
	ref reference.Reference
	eps []*endpoint
}

// Repository returns the repository of ref.
func (r *Resolver) Repository(ref reference.Reference) (*Repository, error) {
	eps, err := r.endpoints(ref.Domain)
	if err != nil {
		return nil, err
	}
	return &Repository{r: r, ref: ref, eps: eps}, nil
}

// Reference is the reference the repository was made for.
func (repo *Repository) Reference() reference.Reference { return repo.ref }

// with returns the endpoints having capability c, or errdefs-style error.
func (repo *Repository) with(c config.Capability) ([]*endpoint, error) {
	var out []*endpoint
	for _, ep := range repo.eps {
		if ep.Can(c) {
			out = append(out, ep)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry %s: no host configured with capability %q", repo.ref.Domain, c)
	}
	return out, nil
}

// tlsRecordError reports whether err is a TLS client talking to a plain
// HTTP server.
func tlsRecordError(err error) bool {
	var rhe tls.RecordHeaderError
	return errors.As(err, &rhe) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// downgrade switches a fallback endpoint to http after err (a TLS request
// answered in plain HTTP); it reports whether the request should be sent
// again.
func (e *endpoint) downgrade(err error) bool {
	if !e.fallback || !tlsRecordError(err) {
		return false
	}
	// Also when another request switched it meanwhile: ours went out
	// over TLS and must go again.
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sch = "http"
	return true
}

// ctxErr returns ctx's error when it is done, so callers report a
// cancellation as one rather than as a network failure.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// CheckLogin checks the credentials for registry by asking its API root
// (GET /v2/) and answering the challenge, as docker login does. It
// returns nil when the registry accepts them (or needs none).
func (r *Resolver) CheckLogin(ctx context.Context, registry string) error {
	eps, err := r.endpoints(registry)
	if err != nil {
		return err
	}
	repo := &Repository{r: r, ref: reference.Reference{Domain: registry}, eps: eps}
	ep, err := repo.pushEndpoint()
	if err != nil {
		ep = eps[len(eps)-1]
	}
	what := "log in to " + ep.Host.Host
	resp, err := repo.do(ctx, ep, request{method: http.MethodGet, path: "/"})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp, what)
	}
	drain(resp)
	return nil
}
