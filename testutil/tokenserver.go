package testutil

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TokenServer is an authorization server speaking the Docker token
// protocol (distribution docs/spec/auth/token.md, oauth.md) whose tokens
// the real docker-registry verifies: ES256 JWTs whose header carries, in
// x5c, a signing certificate issued by a test CA that the registry trusts
// as its rootcertbundle.
//
//	GET  /token?service=…&scope=…&offline_token=true&client_id=…   Basic auth or anonymous
//	POST /token   grant_type=password (username, password) or refresh_token,
//	              service, scope (space separated), client_id, access_type=offline
type TokenServer struct {
	// URL is the realm: "http://127.0.0.1:<port>/token".
	URL string
	// Service is the audience of the tokens, the registry's service name.
	Service string
	// Issuer is the tokens' iss claim.
	Issuer string
	// CA signed the token signing certificate; its CertFile is the
	// registry's rootcertbundle.
	CA *CA

	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	x5c    []string
	users  map[string]string
	access func(user, repo string, actions []string) []string

	mu         sync.Mutex
	expiry     time.Duration
	postStatus int
	refresh    map[string]string // refresh token -> user
	requests   []TokenRequest
}

// TokenRequest is one request the token server answered.
type TokenRequest struct {
	Method string // GET or POST
	// GrantType is the form's grant_type of a POST ("password",
	// "refresh_token"); empty for GET.
	GrantType string
	// User is the user the request named (Basic auth, form username, or
	// the owner of the refresh token), whether or not it authenticated;
	// empty for anonymous requests.
	User string
	// Scopes are the scopes asked for, as sent.
	Scopes []string
	// Offline reports whether a refresh token was asked for.
	Offline bool
	// Status is the HTTP status of the answer.
	Status int
}

// DefaultTokenExpiry is how long tokens live unless SetExpiry says
// otherwise.
const DefaultTokenExpiry = 5 * time.Minute

// maxTokenForm bounds a POST body.
const maxTokenForm = 64 << 10

// StartTokenServer serves on 127.0.0.1 (plain HTTP) until the test ends.
// users maps user names to passwords. access decides which of the actions
// ("pull", "push") asked for user ("" = anonymous) gets on repository repo;
// a nil access grants nothing.
func StartTokenServer(t testing.TB, users map[string]string, access func(user, repo string, actions []string) []string) *TokenServer {
	t.Helper()
	ca := NewCA(t)
	cert, key, _, _ := ca.issue(t, "token-signer", &x509.Certificate{
		Subject:  pkix.Name{CommonName: "strata test token signer"},
		KeyUsage: x509.KeyUsageDigitalSignature,
	})
	ts := &TokenServer{
		Service: "strata-test-registry",
		Issuer:  "strata-test-token-server",
		CA:      ca,
		key:     key,
		x5c:     []string{base64.StdEncoding.EncodeToString(cert.Raw)},
		users:   map[string]string{},
		access:  access,
		expiry:  DefaultTokenExpiry,
		refresh: map[string]string{},
	}
	for u, p := range users {
		ts.users[u] = p
	}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serveHTTP))
	t.Cleanup(ts.srv.Close)
	ts.URL = ts.srv.URL + "/token"
	return ts
}

// RegistryYAML returns the ExtraYAML that makes a registry demand tokens
// from this server.
func (ts *TokenServer) RegistryYAML() string {
	return fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
		ts.URL, ts.Service, ts.Issuer, ts.CA.CertFile)
}

// SetExpiry sets the lifetime of the tokens issued from now on (whole
// seconds; expires_in says it).
func (ts *TokenServer) SetExpiry(d time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.expiry = d
}

// FailPOST makes every POST answer status (such as 404 or 405, as token
// servers without OAuth2 support do); 0 serves POST again.
func (ts *TokenServer) FailPOST(status int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.postStatus = status
}

// RevokeRefreshTokens forgets every refresh token issued so far.
func (ts *TokenServer) RevokeRefreshTokens() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.refresh)
}

// Requests returns the requests answered so far, in order.
func (ts *TokenServer) Requests() []TokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]TokenRequest, len(ts.requests))
	for i, r := range ts.requests {
		r.Scopes = slices.Clone(r.Scopes)
		out[i] = r
	}
	return out
}

// tokenResponse is what GET and POST answer; GET fills Token as well as
// AccessToken, as the spec asks for compatibility.
type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (ts *TokenServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := TokenRequest{Method: r.Method}
	status := ts.answer(w, r, &rec)
	rec.Status = status
	ts.mu.Lock()
	ts.requests = append(ts.requests, rec)
	ts.mu.Unlock()
}

// answer writes the response to r, fills rec and returns the status.
func (ts *TokenServer) answer(w http.ResponseWriter, r *http.Request, rec *TokenRequest) int {
	if r.URL.Path != "/token" {
		return writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "no such endpoint " + r.URL.Path})
	}
	ts.mu.Lock()
	postStatus := ts.postStatus
	ts.mu.Unlock()

	var (
		service, user string
		offline       bool
	)
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		service = q.Get("service")
		for _, s := range q["scope"] {
			rec.Scopes = append(rec.Scopes, strings.Fields(s)...)
		}
		offline = q.Get("offline_token") == "true"
		rec.Offline = offline
		if u, p, ok := r.BasicAuth(); ok {
			rec.User = u
			if !ts.passwordOK(u, p) {
				return writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{
					{"code": "UNAUTHORIZED", "message": "authentication failed: unknown user or wrong password"}}})
			}
			user = u
		}
	case http.MethodPost:
		if postStatus != 0 {
			return writeJSON(w, postStatus, map[string]string{"error": "unsupported", "error_description": "POST is disabled on this token server"})
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			return writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "unreadable form"})
		}
		service = r.PostForm.Get("service")
		rec.Scopes = strings.Fields(r.PostForm.Get("scope"))
		rec.GrantType = r.PostForm.Get("grant_type")
		if r.PostForm.Get("client_id") == "" {
			return writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "client_id is required"})
		}
		switch rec.GrantType {
		case "password":
			u := r.PostForm.Get("username")
			rec.User = u
			offline = r.PostForm.Get("access_type") == "offline"
			rec.Offline = offline
			if !ts.passwordOK(u, r.PostForm.Get("password")) {
				return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "unknown user or wrong password"})
			}
			user = u
		case "refresh_token":
			ts.mu.Lock()
			u, ok := ts.refresh[r.PostForm.Get("refresh_token")]
			ts.mu.Unlock()
			rec.User = u
			if !ok {
				return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "unknown or revoked refresh token"})
			}
			user = u
		default:
			return writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "grant_type must be password or refresh_token"})
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		return writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "method not allowed"})
	}
	if service != ts.Service {
		return writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": fmt.Sprintf("unknown service %q", service)})
	}

	ts.mu.Lock()
	expiry := ts.expiry
	ts.mu.Unlock()
	now := time.Now()
	token, err := ts.sign(user, ts.grant(user, rec.Scopes), now, expiry)
	if err != nil {
		return writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "sign token: " + err.Error()})
	}
	resp := tokenResponse{AccessToken: token, ExpiresIn: int64(expiry / time.Second), IssuedAt: now.UTC().Format(time.RFC3339)}
	if r.Method == http.MethodGet {
		resp.Token = token
	} else {
		resp.Scope = strings.Join(rec.Scopes, " ")
	}
	if offline && user != "" {
		rt := randomHex()
		ts.mu.Lock()
		ts.refresh[rt] = user
		ts.mu.Unlock()
		resp.RefreshToken = rt
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (ts *TokenServer) passwordOK(user, password string) bool {
	want, ok := ts.users[user]
	return ok && user != "" && subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
}

// resourceActions is one entry of the access claim.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// grant decides, scope by scope, what user gets. Only repository scopes
// are granted; anything else (registry:catalog:*) gets nothing.
func (ts *TokenServer) grant(user string, scopes []string) []resourceActions {
	out := []resourceActions{}
	for _, s := range scopes {
		typ, rest, ok := strings.Cut(s, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok || i < 0 || typ != "repository" || ts.access == nil {
			continue
		}
		name, actions := rest[:i], strings.Split(rest[i+1:], ",")
		var granted []string
		for _, a := range ts.access(user, name, actions) {
			if slices.Contains(actions, a) && !slices.Contains(granted, a) {
				granted = append(granted, a)
			}
		}
		if len(granted) > 0 {
			out = append(out, resourceActions{Type: typ, Name: name, Actions: granted})
		}
	}
	return out
}

// sign makes a compact JWS (ES256) of the claims distribution's token
// access controller checks: iss, aud (the service), nbf and exp, and the
// access list; the header's x5c chain leads to the rootcertbundle.
func (ts *TokenServer) sign(user string, access []resourceActions, now time.Time, expiry time.Duration) (string, error) {
	header, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": ts.x5c})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss":    ts.Issuer,
		"sub":    user,
		"aud":    ts.Service,
		"exp":    now.Add(expiry).Unix(),
		"nbf":    now.Unix(),
		"iat":    now.Unix(),
		"jti":    randomHex(),
		"access": access,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS wants R and S as fixed-width big-endian integers (RFC 7518
	// section 3.4), not ASN.1.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
	return status
}
