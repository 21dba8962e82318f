package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// publicAccess grants pull on public/* to everyone and everything to alice.
func publicAccess(user, repo string, actions []string) []string {
	if user == "alice" {
		return actions
	}
	if strings.HasPrefix(repo, "public/") {
		return []string{"pull"}
	}
	return nil
}

// getToken asks ts for a token with GET, with Basic auth unless user is
// empty, and returns the status and decoded body.
func getToken(t *testing.T, ts *TokenServer, user, password string, offline bool, scopes ...string) (int, map[string]any) {
	t.Helper()
	q := url.Values{"service": {ts.Service}, "scope": scopes}
	if offline {
		q.Set("offline_token", "true")
		q.Set("client_id", "testutil")
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	return doJSON(t, req)
}

func postToken(t *testing.T, ts *TokenServer, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: decode body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, body
}

// registryGet GETs path on the registry with the token (if any) and returns
// the status and the WWW-Authenticate header.
func registryGet(t *testing.T, host, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestTokenServerRegistry checks that the real registry accepts the token
// server's tokens for what they grant, and only that.
func TestTokenServerRegistry(t *testing.T) {
	ts := StartTokenServer(t, map[string]string{"alice": "wonderland"}, publicAccess)
	r := StartRegistry(t, RegistryConfig{ExtraYAML: ts.RegistryYAML()})

	status, challenge := registryGet(t, r.Host, "/v2/public/app/tags/list", "")
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `realm="`+ts.URL+`"`) || !strings.Contains(challenge, `service="`+ts.Service+`"`) {
		t.Fatalf("anonymous tags/list: %d, WWW-Authenticate %q", status, challenge)
	}

	status, body := getToken(t, ts, "", "", false, "repository:public/app:pull")
	if status != http.StatusOK || body["token"] == nil || body["token"] != body["access_token"] {
		t.Fatalf("anonymous token: %d %v", status, body)
	}
	if _, ok := body["refresh_token"]; ok {
		t.Fatalf("anonymous token came with a refresh token: %v", body)
	}
	anon := body["token"].(string)
	// 404 NAME_UNKNOWN: past authorization, the repository is empty.
	if status, challenge := registryGet(t, r.Host, "/v2/public/app/tags/list", anon); status != http.StatusNotFound {
		t.Fatalf("public tags/list with anonymous token: %d %q, want 404", status, challenge)
	}
	if status, challenge := registryGet(t, r.Host, "/v2/private/app/tags/list", anon); status != http.StatusUnauthorized || !strings.Contains(challenge, `error="insufficient_scope"`) {
		t.Fatalf("private tags/list with anonymous token: %d %q, want 401 insufficient_scope", status, challenge)
	}

	status, body = getToken(t, ts, "alice", "wonderland", true, "repository:private/app:pull,push")
	if status != http.StatusOK || body["refresh_token"] == nil {
		t.Fatalf("alice's token: %d %v", status, body)
	}
	if status, _ := registryGet(t, r.Host, "/v2/private/app/tags/list", body["token"].(string)); status != http.StatusNotFound {
		t.Fatalf("private tags/list with alice's token: %d, want 404", status)
	}

	status, body = getToken(t, ts, "alice", "not-her-password", false, "repository:private/app:pull")
	if status != http.StatusUnauthorized || body["errors"] == nil {
		t.Fatalf("wrong password: %d %v, want 401 with errors", status, body)
	}

	// A token of another server (same service and issuer names, another
	// CA) is refused.
	other := StartTokenServer(t, nil, publicAccess)
	_, body = getToken(t, other, "", "", false, "repository:public/app:pull")
	if status, challenge := registryGet(t, r.Host, "/v2/public/app/tags/list", body["token"].(string)); status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Fatalf("token of another signer: %d %q, want 401 invalid_token", status, challenge)
	}

	got := ts.Requests()
	want := []TokenRequest{
		{Method: "GET", Scopes: []string{"repository:public/app:pull"}, Status: 200},
		{Method: "GET", User: "alice", Scopes: []string{"repository:private/app:pull,push"}, Offline: true, Status: 200},
		{Method: "GET", User: "alice", Scopes: []string{"repository:private/app:pull"}, Status: 401},
	}
	if !slices.EqualFunc(got, want, requestEqual) {
		t.Fatalf("Requests() = %+v, want %+v", got, want)
	}
}

func requestEqual(a, b TokenRequest) bool {
	return a.Method == b.Method && a.GrantType == b.GrantType && a.User == b.User && a.Offline == b.Offline &&
		a.Status == b.Status && slices.Equal(a.Scopes, b.Scopes)
}

// TestTokenServerOAuth covers the POST side: password and refresh token
// grants, refusals, revocation, FailPOST and SetExpiry.
func TestTokenServerOAuth(t *testing.T) {
	ts := StartTokenServer(t, map[string]string{"alice": "wonderland"}, publicAccess)
	r := StartRegistry(t, RegistryConfig{ExtraYAML: ts.RegistryYAML()})
	ts.SetExpiry(42 * time.Second)

	tests := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"no client_id", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}, "service": {ts.Service}}, 400},
		{"wrong password", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}, "service": {ts.Service}, "client_id": {"t"}}, 401},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "service": {ts.Service}, "client_id": {"t"}}, 401},
		{"unknown grant", url.Values{"grant_type": {"magic"}, "service": {ts.Service}, "client_id": {"t"}}, 400},
		{"other service", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}, "service": {"elsewhere"}, "client_id": {"t"}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postToken(t, ts, tt.form)
			if status != tt.status || body["error"] == nil {
				t.Fatalf("POST %s: %d %v, want %d with an error", tt.name, status, body, tt.status)
			}
		})
	}

	status, body := postToken(t, ts, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"},
		"service": {ts.Service}, "client_id": {"t"}, "access_type": {"offline"}, "scope": {"repository:private/app:pull"}})
	if status != 200 || body["refresh_token"] == nil || body["access_token"] == nil || body["expires_in"] != 42.0 {
		t.Fatalf("password grant: %d %v", status, body)
	}
	rt := body["refresh_token"].(string)
	status, body = postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"service": {ts.Service}, "client_id": {"t"}, "scope": {"repository:private/app:pull repository:public/app:pull"}})
	if status != 200 || body["access_token"] == nil {
		t.Fatalf("refresh grant: %d %v", status, body)
	}
	for _, repo := range []string{"private/app", "public/app"} {
		if status, challenge := registryGet(t, r.Host, "/v2/"+repo+"/tags/list", body["access_token"].(string)); status != http.StatusNotFound {
			t.Fatalf("%s with refreshed token: %d %q, want 404", repo, status, challenge)
		}
	}

	ts.RevokeRefreshTokens()
	if status, _ := postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "service": {ts.Service}, "client_id": {"t"}}); status != 401 {
		t.Fatalf("revoked refresh token: %d, want 401", status)
	}
	ts.FailPOST(http.StatusMethodNotAllowed)
	if status, _ := postToken(t, ts, url.Values{"grant_type": {"password"}}); status != 405 {
		t.Fatalf("POST after FailPOST(405): %d", status)
	}

	reqs := ts.Requests()
	last := reqs[len(reqs)-3]
	if last.Method != "POST" || last.GrantType != "refresh_token" || last.User != "alice" || last.Status != 200 ||
		!slices.Equal(last.Scopes, []string{"repository:private/app:pull", "repository:public/app:pull"}) {
		t.Fatalf("refresh request recorded as %+v", last)
	}
}
