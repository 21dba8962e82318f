package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Credentials returns the username and secret for a registry host
// ("127.0.0.1:5000", "docker.io"). ("", "", nil) means none. An empty
// username with a secret means the secret is an identity (refresh) token,
// as in docker's config.json.
type Credentials func(ctx context.Context, host string) (username, secret string, err error)

// ClientID is the client_id strata names itself with to token servers.
const ClientID = "strata"

const (
	// maxTokenResponse bounds what a token server may send back.
	maxTokenResponse = 1 << 20
	// defaultExpiry is a token's lifetime when the token server does not
	// say (the Docker token spec's default).
	defaultExpiry = 60 * time.Second
	// maxExpiry caps a token's lifetime in the cache (and keeps a huge
	// expires_in from overflowing a Duration).
	maxExpiry = 24 * time.Hour
	// maxErrorText bounds how much of a token server's error we quote.
	maxErrorText = 256
)

// Authorizer adds authorization to registry requests and learns, from the
// 401 answers to them, what each registry host wants: HTTP Basic
// credentials, or Bearer tokens from a token server (the Docker token
// protocol, distribution docs/spec/auth/token.md and oauth.md).
//
// The caller's loop, per request:
//
//	for {
//		a.Authorize(ctx, req, scopes)
//		resp := send(req)
//		if resp.StatusCode != 401 { break }
//		if err := a.Challenge(ctx, resp, scopes); err != nil { return err }
//	}
//
// Challenge returns an error rather than nil when retrying cannot help, so
// the loop ends: when the registry refuses a token just fetched, or the
// Basic credentials just sent. A token that had been in use and is refused
// (revoked, expired early) is replaced once; if the replacement is refused
// too, Challenge gives up and the next request starts over.
//
// Tokens are cached per registry host and scope set for 90% of their
// expires_in (60s when the token server does not say), counted on our
// clock; refresh tokens are kept in memory per realm, service and user. An
// Authorizer is safe for concurrent use; concurrent challenges for the same
// host and scopes fetch one token.
type Authorizer struct {
	client *http.Client
	creds  Credentials
	now    func() time.Time

	mu       sync.Mutex
	basic    map[string]bool       // hosts that asked for Basic
	tokens   map[string]*token     // by cacheKey
	inflight map[string]*fetch     // by cacheKey
	refresh  map[refreshKey]string // refresh tokens from password grants
}

// token is a cached Bearer token.
type token struct {
	value   string
	scopes  []string  // what it was asked for, normalized
	expires time.Time // not sent after this, unless never sent yet
	uses    int       // requests Authorize put it on
	// replacement: fetched because the token before it, which had been
	// in use, was rejected. If it is rejected too, we give up.
	replacement bool
	// rejected: the registry refused it and Challenge gave up; it is no
	// longer sent, and a request that comes back without it starts over.
	rejected bool
}

// usable reports whether t may be sent: not rejected, and not expired
// unless it was never sent (the retry after the challenge that fetched it
// must carry it, however short its life, or we would fetch forever).
func (t *token) usable(now time.Time) bool {
	return !t.rejected && (t.uses == 0 || now.Before(t.expires))
}

// fetch is a token fetch in flight, which other challenges for the same
// key wait for.
type fetch struct {
	done chan struct{}
	err  error
}

type refreshKey struct{ realm, service, username string }

// NewAuthorizer returns an Authorizer that fetches tokens with client
// (http.DefaultClient when nil) and asks creds for credentials (anonymous
// when nil).
func NewAuthorizer(client *http.Client, creds Credentials) *Authorizer {
	if client == nil {
		client = http.DefaultClient
	}
	return &Authorizer{
		client:   client,
		creds:    creds,
		now:      time.Now,
		basic:    map[string]bool{},
		tokens:   map[string]*token{},
		inflight: map[string]*fetch{},
		refresh:  map[refreshKey]string{},
	}
}

// Authorize sets req's Authorization header from what is cached for
// req.URL.Host and scopes (in any order, duplicates allowed): a Bearer
// token still valid for those scopes, else Basic credentials if that host
// asked for them. Otherwise it removes the header, so a retried request
// never carries a stale token. It fails only when the credentials cannot
// be read.
func (a *Authorizer) Authorize(ctx context.Context, req *http.Request, scopes []string) error {
	host := req.URL.Host
	key := cacheKey(host, NormalizeScopes(scopes))
	a.mu.Lock()
	if t := a.tokens[key]; t != nil && t.usable(a.now()) {
		t.uses++
		v := t.value
		a.mu.Unlock()
		req.Header.Set("Authorization", "Bearer "+v)
		return nil
	}
	basic := a.basic[host]
	a.mu.Unlock()
	req.Header.Del("Authorization")
	if !basic {
		return nil
	}
	user, secret, err := a.credentials(ctx, host)
	if err != nil {
		return err
	}
	if user != "" && secret != "" {
		req.SetBasicAuth(user, secret)
	}
	return nil
}

// Challenge handles a 401 answer (resp.Request.URL.Host is the host) to a
// request made for scopes. For a Bearer challenge it fetches a token from
// the realm for the service and the scopes, plus any the challenge names,
// and caches it; for a Basic challenge it remembers to send the host's
// credentials. It returns nil when a retried request will carry new
// authorization, and otherwise an error:
//
//   - errdefs.ErrUnauthenticated: no credentials for a Basic challenge, or
//     they were just refused; the token server refused (its status and
//     error text are quoted, never the credentials); the registry rejected
//     a token just fetched for these scopes; an unusable realm;
//   - errdefs.ErrNotImplemented: a scheme other than Basic and Bearer.
func (a *Authorizer) Challenge(ctx context.Context, resp *http.Response, scopes []string) error {
	if resp == nil || resp.Request == nil || resp.Request.URL == nil {
		return fmt.Errorf("challenge: response without its request: %w", errdefs.ErrInvalidArgument)
	}
	host := resp.Request.URL.Host
	cs, err := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		return fmt.Errorf("registry %s: %w: %w", host, errdefs.ErrUnauthenticated, err)
	}
	var bearer, basic *Challenge
	for i := range cs {
		switch cs[i].Scheme {
		case Bearer:
			if bearer == nil {
				bearer = &cs[i]
			}
		case Basic:
			if basic == nil {
				basic = &cs[i]
			}
		}
	}
	switch {
	case bearer != nil:
		return a.challengeBearer(ctx, resp, host, *bearer, scopes)
	case basic != nil:
		return a.challengeBasic(ctx, resp, host, *basic)
	case len(cs) == 0:
		return fmt.Errorf("registry %s answered %s without a WWW-Authenticate challenge: %w", host, resp.Status, errdefs.ErrUnauthenticated)
	default:
		return fmt.Errorf("registry %s asks for authentication scheme %q: %w", host, cs[0].Scheme, errdefs.ErrNotImplemented)
	}
}

func (a *Authorizer) challengeBasic(ctx context.Context, resp *http.Response, host string, c Challenge) error {
	user, secret, err := a.credentials(ctx, host)
	if err != nil {
		return err
	}
	if user == "" || secret == "" {
		return fmt.Errorf("registry %s asks for basic authentication (realm %q) and no username and password are configured for it: %w",
			host, c.Parameters["realm"], errdefs.ErrUnauthenticated)
	}
	if sent := resp.Request.Header.Get("Authorization"); hasScheme(sent, "basic") {
		return fmt.Errorf("registry %s refused the username and password configured for it: %w", host, errdefs.ErrUnauthenticated)
	}
	a.mu.Lock()
	a.basic[host] = true
	a.mu.Unlock()
	return nil
}

func (a *Authorizer) challengeBearer(ctx context.Context, resp *http.Response, host string, c Challenge, scopes []string) error {
	realm, err := checkRealm(host, resp.Request.URL.Scheme, c.Parameters["realm"])
	if err != nil {
		return err
	}
	service := c.Parameters["service"]
	want := NormalizeScopes(scopes)
	key := cacheKey(host, want)
	need := NormalizeScopes(append(append([]string(nil), want...), strings.Fields(c.Parameters["scope"])...))
	var sent string
	if h := resp.Request.Header.Get("Authorization"); hasScheme(h, "bearer") {
		sent = strings.TrimSpace(h[len("bearer"):])
	}

	for {
		a.mu.Lock()
		if f := a.inflight[key]; f != nil {
			a.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return fmt.Errorf("registry %s: wait for token: %w", host, ctx.Err())
			}
			// The fetch that ended may have been cancelled by its own
			// caller's context; then look again rather than fail.
			if f.err != nil && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
				return f.err
			}
			continue
		}
		replacement := false
		t := a.tokens[key]
		if t != nil && t.rejected && sent == t.value {
			a.mu.Unlock()
			return rejectedError(host, realm, need, c)
		}
		if t != nil && covers(t.scopes, need) && t.usable(a.now()) {
			if sent != t.value {
				// Another challenge has fetched it since this request
				// left, or the request went out without it.
				a.mu.Unlock()
				return nil
			}
			if t.uses <= 1 || t.replacement {
				t.rejected = true
				a.mu.Unlock()
				return rejectedError(host, realm, need, c)
			}
			// A token that has been working was rejected (revoked, or
			// expired early): fetch one more, and only one.
			replacement = true
		}
		if t != nil && !covers(need, t.scopes) && sent == t.value {
			// The registry wants more than the token holds: ask for both.
			need = NormalizeScopes(append(need, t.scopes...))
		}
		f := &fetch{done: make(chan struct{})}
		a.inflight[key] = f
		a.mu.Unlock()

		nt, err := a.fetchToken(ctx, host, realm, service, need)
		if err != nil {
			err = fmt.Errorf("registry %s: %w", host, err)
		}

		a.mu.Lock()
		delete(a.inflight, key)
		if err == nil {
			nt.replacement = replacement
			a.tokens[key] = nt
		}
		f.err = err
		close(f.done)
		a.mu.Unlock()
		return err
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// redact blanks out every secret in s: a token server may echo what it was
// sent.
func redact(s string, secrets []string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}

// credentials asks a.creds, if any.
func (a *Authorizer) credentials(ctx context.Context, host string) (string, string, error) {
	if a.creds == nil {
		return "", "", nil
	}
	user, secret, err := a.creds(ctx, host)
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	return user, secret, nil
}

// checkRealm parses a Bearer challenge's realm: an http(s) URL, and plain
// http only when the registry itself is plain http or the realm is on a
// loopback address (a token server beside a test or local registry).
func checkRealm(host, registryScheme, realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("registry %s: token realm %q is not an http(s) URL: %w", host, redactURL(realm), errdefs.ErrUnauthenticated)
	}
	if u.Scheme == "http" && registryScheme == "https" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("registry %s is https but its token realm %s is plain http, allowed only on loopback: %w",
			host, u.Redacted(), errdefs.ErrUnauthenticated)
	}
	return u, nil
}

// redactURL keeps a password in a realm that does not parse out of errors.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "…" + s[i:]
	}
	return s
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hasScheme(header, scheme string) bool {
	return len(header) > len(scheme) && strings.EqualFold(header[:len(scheme)], scheme) && header[len(scheme)] == ' '
}

func rejectedError(host string, realm *url.URL, scopes []string, c Challenge) error {
	return fmt.Errorf("registry %s rejected a token just fetched from %s for %s (%s): %w",
		host, realm.Redacted(), scopeList(scopes), challengeError(c), errdefs.ErrUnauthenticated)
}

func challengeError(c Challenge) string {
	if e := c.Parameters["error"]; e != "" {
		return e
	}
	return "no reason given"
}
