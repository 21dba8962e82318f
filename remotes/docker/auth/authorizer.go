package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

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

// RepositoryScope returns the token scope to pull from repository repo
// ("repository:library/alpine:pull"), or to pull and push.
func RepositoryScope(repo string, push bool) string {
	if push {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":pull"
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

// fetchToken gets a token for scopes from realm, with what credentials
// there are for host: an identity token or a kept refresh token by OAuth2
// POST (falling back to GET where POST is not served), a username and
// password by GET with Basic auth, or nothing.
func (a *Authorizer) fetchToken(ctx context.Context, host string, realm *url.URL, service string, scopes []string) (*token, error) {
	user, secret, err := a.credentials(ctx, host)
	if err != nil {
		return nil, err
	}
	secrets := []string{secret}
	switch {
	case user == "" && secret != "":
		// An identity token is a refresh token.
		tr, err := a.postToken(ctx, realm, service, scopes, secret, secrets)
		if isStatus(err, http.StatusNotFound, http.StatusMethodNotAllowed) {
			tr, err = a.getToken(ctx, realm, service, scopes, user, secret, secrets)
		}
		if err != nil {
			return nil, err
		}
		return a.newToken(tr, scopes), nil

	case user != "" && secret != "":
		rk := refreshKey{realm.String(), service, user}
		a.mu.Lock()
		rt := a.refresh[rk]
		a.mu.Unlock()
		if rt != "" {
			tr, err := a.postToken(ctx, realm, service, scopes, rt, append(secrets, rt))
			switch {
			case err == nil:
				if tr.RefreshToken != "" {
					a.keepRefresh(rk, tr.RefreshToken)
				}
				return a.newToken(tr, scopes), nil
			case isStatus(err, http.StatusNotFound, http.StatusMethodNotAllowed):
			case isStatus(err, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden):
				// Revoked or expired: forget it, the password still works.
				a.mu.Lock()
				if a.refresh[rk] == rt {
					delete(a.refresh, rk)
				}
				a.mu.Unlock()
			default:
				return nil, err
			}
		}
		tr, err := a.getToken(ctx, realm, service, scopes, user, secret, secrets)
		if err != nil {
			return nil, err
		}
		if tr.RefreshToken != "" {
			a.keepRefresh(rk, tr.RefreshToken)
		}
		return a.newToken(tr, scopes), nil

	default:
		tr, err := a.getToken(ctx, realm, service, scopes, "", "", nil)
		if err != nil {
			return nil, err
		}
		return a.newToken(tr, scopes), nil
	}
}

func (a *Authorizer) keepRefresh(rk refreshKey, rt string) {
	a.mu.Lock()
	a.refresh[rk] = rt
	a.mu.Unlock()
}

// tokenResponse is a token server's answer (GET or POST).
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
}

// newToken caches what tr says for 90% of its lifetime, counted from our
// clock: issued_at is the token server's clock and may be off.
func (a *Authorizer) newToken(tr *tokenResponse, scopes []string) *token {
	v := tr.AccessToken
	if v == "" {
		v = tr.Token
	}
	life := defaultExpiry
	switch {
	case tr.ExpiresIn > int64(maxExpiry/time.Second):
		life = maxExpiry
	case tr.ExpiresIn > 0:
		life = time.Duration(tr.ExpiresIn) * time.Second
	}
	return &token{value: v, scopes: scopes, expires: a.now().Add(life - life/10)}
}

// getToken asks realm for a token by GET, with Basic auth when a secret is
// given (and then for a refresh token too).
func (a *Authorizer) getToken(ctx context.Context, realm *url.URL, service string, scopes []string, user, secret string, secrets []string) (*tokenResponse, error) {
	u := *realm
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	if secret != "" {
		q.Set("offline_token", "true")
		q.Set("client_id", ClientID)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %w", realm.Redacted(), err)
	}
	if secret != "" {
		req.SetBasicAuth(user, secret)
	}
	return a.doToken(req, realm, secrets)
}

// postToken trades a refresh token for an access token (OAuth2 form POST).
func (a *Authorizer) postToken(ctx context.Context, realm *url.URL, service string, scopes []string, refreshToken string, secrets []string) (*tokenResponse, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"service":       {service},
		"client_id":     {ClientID},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %w", realm.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return a.doToken(req, realm, secrets)
}

// statusError is a token server's refusal.
type statusError struct {
	method, realm string
	status        int
	statusText    string
	text          string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("token server %s refused %s: %s", e.realm, e.method, e.statusText)
	if e.text != "" {
		s += ": " + e.text
	}
	return s
}

func (e *statusError) Unwrap() error { return errdefs.ErrUnauthenticated }

func isStatus(err error, codes ...int) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.status == c {
			return true
		}
	}
	return false
}

// doToken sends a token request and reads the answer. secrets are redacted
// from whatever of the server's text makes it into an error.
func (a *Authorizer) doToken(req *http.Request, realm *url.URL, secrets []string) (*tokenResponse, error) {
	resp, err := a.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds no secret: credentials
		// travel in the header or the body.
		return nil, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read token response from %s: %w", realm.Redacted(), err)
	}
	if len(body) > maxTokenResponse {
		return nil, fmt.Errorf("token response from %s exceeds %d bytes: %w", realm.Redacted(), maxTokenResponse, errdefs.ErrUnauthenticated)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{method: req.Method, realm: realm.Redacted(), status: resp.StatusCode, statusText: resp.Status,
			text: redact(errorText(body), secrets)}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("token response from %s: invalid JSON: %w", realm.Redacted(), err)
	}
	if tr.AccessToken == "" && tr.Token == "" {
		return nil, fmt.Errorf("token response from %s holds no token: %w", realm.Redacted(), errdefs.ErrUnauthenticated)
	}
	return &tr, nil
}

// errorText finds the message in a token server's error body: the
// registry's {"errors":[{code,message}]}, OAuth2's {error,
// error_description}, or {details}; else the body itself, cut short.
func errorText(body []byte) string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Details     string `json:"details"`
	}
	var parts []string
	if json.Unmarshal(body, &e) == nil {
		for _, x := range e.Errors {
			parts = append(parts, strings.TrimSpace(strings.Join(nonEmpty(x.Code, x.Message), ": ")))
		}
		if e.Error != "" || e.Description != "" {
			parts = append(parts, strings.Join(nonEmpty(e.Error, e.Description), ": "))
		}
		if e.Details != "" {
			parts = append(parts, e.Details)
		}
	}
	s := strings.Join(parts, "; ")
	if s == "" {
		s = string(body)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	return s
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

func cacheKey(host string, scopes []string) string {
	return host + " " + strings.Join(scopes, " ")
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "no scope"
	}
	return "scope " + strings.Join(scopes, " ")
}

// NormalizeScopes returns scopes sorted, with the actions on each resource
// merged, sorted and deduplicated: "repository:a:push" and
// "repository:a:pull" become "repository:a:pull,push". A scope that is not
// type:name:actions is kept as it is.
func NormalizeScopes(scopes []string) []string {
	actions := map[string]map[string]bool{}
	var odd []string
	for _, s := range scopes {
		for _, s := range strings.Fields(s) {
			i := strings.LastIndexByte(s, ':')
			if i <= 0 || !strings.Contains(s[:i], ":") {
				odd = append(odd, s)
				continue
			}
			res := s[:i]
			if actions[res] == nil {
				actions[res] = map[string]bool{}
			}
			for _, act := range strings.Split(s[i+1:], ",") {
				if act != "" {
					actions[res][act] = true
				}
			}
		}
	}
	out := odd
	for res, set := range actions {
		acts := make([]string, 0, len(set))
		for act := range set {
			acts = append(acts, act)
		}
		sort.Strings(acts)
		out = append(out, res+":"+strings.Join(acts, ","))
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// covers reports whether normalized scopes have grant at least what need
// asks for.
func covers(have, need []string) bool {
	got := map[string]bool{}
	for _, s := range have {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			got[s] = true
			continue
		}
		for _, act := range strings.Split(s[i+1:], ",") {
			got[s[:i]+":"+act] = true
		}
		got[s] = true
	}
	for _, s := range need {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || !strings.Contains(s[:i], ":") {
			if !got[s] {
				return false
			}
			continue
		}
		for _, act := range strings.Split(s[i+1:], ",") {
			if !got[s[:i]+":"+act] {
				return false
			}
		}
	}
	return true
}
