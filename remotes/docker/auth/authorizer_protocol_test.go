package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// This file covers protocol corners no real registry or token server shows
// on demand, with httptest servers: odd token responses, revoked tokens,
// realms, schemes.

// fakeRegistry is an httptest registry that accepts the Bearer tokens in
// valid and challenges everything else with a realm.
type fakeRegistry struct {
	*httptest.Server
	mu    sync.Mutex
	realm string
	valid map[string]bool
	// challenge overrides the WWW-Authenticate header when set.
	challenge string
}

func startFakeRegistry(t *testing.T, realm string) *fakeRegistry {
	t.Helper()
	r := &fakeRegistry{realm: realm, valid: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		h := req.Header.Get("Authorization")
		if v, ok := strings.CutPrefix(h, "Bearer "); ok && r.valid[v] {
			w.WriteHeader(http.StatusOK)
			return
		}
		switch {
		case r.challenge != "":
			w.Header().Set("WWW-Authenticate", r.challenge)
		case r.realm != "":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="fake",scope="repository:x:pull"`, r.realm))
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *fakeRegistry) setValid(token string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.valid[token] = ok
}

// fakeTokenServer answers token requests with reply and records them.
type fakeTokenServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func startFakeTokenServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *fakeTokenServer {
	t.Helper()
	ts := &fakeTokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		ts.mu.Lock()
		ts.requests = append(ts.requests, r)
		ts.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *fakeTokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.requests)
}

func (ts *fakeTokenServer) request(i int) *http.Request {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests[i]
}

var xScopes = []string{"repository:x:pull"}

func TestTokenResponses(t *testing.T) {
	const secret = "hunter2-secret-5e1"
	tests := []struct {
		name    string
		reply   func(w http.ResponseWriter, r *http.Request)
		wantErr []string // substrings; none means success
		is      error
	}{
		{"access_token only", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"access_token":"good"}`)
		}, nil, nil},
		{"token only", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"token":"good","expires_in":300,"issued_at":"2020-01-01T00:00:00Z"}`)
		}, nil, nil},
		{"huge expires_in", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"token":"good","expires_in":9223372036854775807}`)
		}, nil, nil},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"token":"good","pad":"%s"}`, strings.Repeat("x", maxTokenResponse))
		}, []string{"exceeds"}, errdefs.ErrUnauthenticated},
		{"invalid JSON", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"token":`)
		}, []string{"invalid JSON"}, nil},
		{"no token", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"expires_in":60}`)
		}, []string{"holds no token"}, errdefs.ErrUnauthenticated},
		{"registry-style error echoing the password", func(w http.ResponseWriter, r *http.Request) {
			_, p, _ := r.BasicAuth()
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"password %s is wrong"}]}`, p)
		}, []string{"403 Forbidden", "DENIED: password [redacted] is wrong"}, errdefs.ErrUnauthenticated},
		{"oauth-style error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_request","error_description":"bad scope"}`)
		}, []string{"400 Bad Request", "invalid_request: bad scope"}, errdefs.ErrUnauthenticated},
		{"plain-text error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "oops\n\x00"+strings.Repeat("y", 2*maxErrorText))
		}, []string{"500 Internal Server Error", "oops", "…"}, errdefs.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startFakeTokenServer(t, tt.reply)
			reg := startFakeRegistry(t, ts.URL+"/token")
			reg.setValid("good", true)
			a := NewAuthorizer(nil, static("alice", secret))
			resp, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, reg.URL+"/v2/x/tags/list", nil, xScopes)
			if tt.wantErr == nil {
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("do = %v, %v; want 200", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("do succeeded, want an error with %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.ContainsRune(err.Error(), 0) || len(err.Error()) > 2*maxErrorText {
				t.Errorf("error %q holds the secret, a control character or too much text", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestDefaultExpiry: a token without expires_in lives 60s, less the margin.
func TestDefaultExpiry(t *testing.T) {
	ts := startFakeTokenServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"good"}`) })
	reg := startFakeRegistry(t, ts.URL)
	reg.setValid("good", true)
	a, clock := newTestAuthorizer(nil, nil)
	get := func() {
		t.Helper()
		if _, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, reg.URL+"/v2/x/tags/list", nil, xScopes); err != nil {
			t.Fatal(err)
		}
	}
	get()
	clock.Advance(50 * time.Second)
	get()
	if n := ts.count(); n != 1 {
		t.Fatalf("after 50s: %d token requests, want 1", n)
	}
	clock.Advance(5 * time.Second)
	get()
	if n := ts.count(); n != 2 {
		t.Fatalf("after 55s: %d token requests, want 2", n)
	}
}

// TestRevokedToken: a token that worked and is then refused is replaced
// once; a replacement that is refused ends in an error, and the request
// after that starts over.
func TestRevokedToken(t *testing.T) {
	var mu sync.Mutex
	n := 0
	ts := startFakeTokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		fmt.Fprintf(w, `{"token":"tok-%d"}`, n)
		mu.Unlock()
	})
	reg := startFakeRegistry(t, ts.URL)
	for _, v := range []string{"tok-1", "tok-2", "tok-4"} {
		reg.setValid(v, true)
	}
	a := NewAuthorizer(nil, nil)
	get := func() error {
		t.Helper()
		_, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, reg.URL+"/v2/x/tags/list", nil, xScopes)
		return err
	}
	for range 3 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	reg.setValid("tok-1", false)
	if err := get(); err != nil || ts.count() != 2 {
		t.Fatalf("after revoking tok-1: %v, %d token requests; want tok-2", err, ts.count())
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	reg.setValid("tok-2", false)
	err := get() // tok-2 was a replacement: give up
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "rejected a token") || ts.count() != 2 {
		t.Fatalf("after revoking tok-2: %v, %d token requests; want an error and no fetch", err, ts.count())
	}
	// The rejected token is not sent again; a new request starts over,
	// gets tok-3 (refused, just fetched: error), then tok-4.
	req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/x/tags/list", nil)
	req.Header.Set("Authorization", "Bearer stale")
	a.Authorize(context.Background(), req, xScopes)
	if h := req.Header.Get("Authorization"); h != "" {
		t.Fatalf("Authorize after the rejection set %q, want nothing", h)
	}
	if err := get(); !errors.Is(err, errdefs.ErrUnauthenticated) || ts.count() != 3 {
		t.Fatalf("with tok-3 refused: %v, %d token requests", err, ts.count())
	}
	if err := get(); err != nil || ts.count() != 4 {
		t.Fatalf("with tok-4: %v, %d token requests", err, ts.count())
	}
}

// TestIdentityTokenFallback: a token server without OAuth2 POST gets the
// identity token by GET, as containerd does.
func TestIdentityTokenFallback(t *testing.T) {
	ts := startFakeTokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprint(w, `{"token":"good"}`)
	})
	reg := startFakeRegistry(t, ts.URL)
	reg.setValid("good", true)
	a := NewAuthorizer(nil, static("", "identity-token"))
	if _, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, reg.URL+"/v2/x/tags/list", nil, xScopes); err != nil {
		t.Fatal(err)
	}
	if ts.count() != 2 {
		t.Fatalf("%d token requests, want POST then GET", ts.count())
	}
	post, get := ts.request(0), ts.request(1)
	if post.Method != http.MethodPost || post.PostForm.Get("grant_type") != "refresh_token" || post.PostForm.Get("refresh_token") != "identity-token" ||
		post.PostForm.Get("client_id") != ClientID || post.PostForm.Get("service") != "fake" || post.PostForm.Get("scope") != "repository:x:pull" {
		t.Fatalf("POST form %v", post.PostForm)
	}
	if u, p, ok := get.BasicAuth(); get.Method != http.MethodGet || !ok || u != "" || p != "identity-token" ||
		!slices.Equal(get.URL.Query()["scope"], xScopes) || get.URL.Query().Get("client_id") != ClientID {
		t.Fatalf("GET %s with Basic %q", get.URL, get.Header.Get("Authorization"))
	}
}

// TestChallengeScopes: scopes the challenge names are asked for too, one
// scope parameter each.
func TestChallengeScopes(t *testing.T) {
	ts := startFakeTokenServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"good"}`) })
	reg := startFakeRegistry(t, "")
	reg.challenge = fmt.Sprintf(`Bearer realm=%q,service="fake",scope="repository:y:pull repository:x:push"`, ts.URL)
	reg.setValid("good", true)
	a := NewAuthorizer(nil, nil)
	if _, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, reg.URL+"/v2/x/tags/list", nil, xScopes); err != nil {
		t.Fatal(err)
	}
	got := ts.request(0).URL.Query()
	if want := []string{"repository:x:pull,push", "repository:y:pull"}; !slices.Equal(got["scope"], want) || got.Get("service") != "fake" {
		t.Fatalf("token request query %v, want scopes %v", got, want)
	}
	if _, ok := got["offline_token"]; ok {
		t.Fatalf("anonymous token request asked for a refresh token: %v", got)
	}
}

func TestChallengeErrors(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
		tls       bool
		is        error
		want      string
	}{
		{"unknown scheme", `Negotiate abc`, false, errdefs.ErrNotImplemented, `"negotiate"`},
		{"no challenge", ``, false, errdefs.ErrUnauthenticated, "without a WWW-Authenticate"},
		{"unparsable", `Bearer realm="open`, false, errdefs.ErrUnauthenticated, "unterminated"},
		{"realm not http", `Bearer realm="ftp://127.0.0.1/token"`, false, errdefs.ErrUnauthenticated, "not an http(s) URL"},
		{"realm relative", `Bearer realm="/token"`, false, errdefs.ErrUnauthenticated, "not an http(s) URL"},
		{"realm password hidden", `Bearer realm="ftp://u:pw-1c9@host/token"`, false, errdefs.ErrUnauthenticated, "xxxxx"},
		{"plain realm for https registry", `Bearer realm="http://auth.example.com/token"`, true, errdefs.ErrUnauthenticated, "allowed only on loopback"},
		{"basic without credentials", `Basic realm="r"`, false, errdefs.ErrUnauthenticated, "no username and password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.challenge != "" {
					w.Header().Set("WWW-Authenticate", tt.challenge)
				}
				w.WriteHeader(http.StatusUnauthorized)
			})
			srv := httptest.NewUnstartedServer(h)
			if tt.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			_, _, err := do(context.Background(), t, NewAuthorizer(srv.Client(), nil), srv.Client(), http.MethodGet, srv.URL+"/v2/", nil, nil)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw-1c9") {
				t.Fatalf("Challenge(%s) = %v, want %v containing %q", tt.challenge, err, tt.is, tt.want)
			}
		})
	}
}

func TestCheckRealm(t *testing.T) {
	tests := []struct {
		registryScheme, realm string
		ok                    bool
	}{
		{"https", "https://auth.example.com/token", true},
		{"http", "http://auth.example.com/token", true},
		{"https", "http://127.0.0.1:5001/token", true},
		{"https", "http://[::1]:5001/token", true},
		{"https", "http://localhost/token", true},
		{"https", "http://auth.example.com/token", false},
		{"https", "http://10.0.0.1/token", false},
		{"https", "file:///etc/passwd", false},
		{"https", "", false},
		{"https", "https://", false},
	}
	for _, tt := range tests {
		_, err := checkRealm("registry.example.com", tt.registryScheme, tt.realm)
		if (err == nil) != tt.ok {
			t.Errorf("checkRealm(%s, %q) = %v, want ok %v", tt.registryScheme, tt.realm, err, tt.ok)
		}
	}
}
