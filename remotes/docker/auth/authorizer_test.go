package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/testutil"
)

// fakeClock is the Authorizer's clock in tests: expiry is checked by
// moving it, never by sleeping. The registry and token server keep real
// time, and their tokens outlive the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestAuthorizer(client *http.Client, creds Credentials) (*Authorizer, *fakeClock) {
	a := NewAuthorizer(client, creds)
	clock := &fakeClock{now: time.Now()}
	a.now = clock.Now
	return a, clock
}

func static(user, secret string) Credentials {
	return func(ctx context.Context, host string) (string, string, error) { return user, secret, nil }
}

// maxRounds bounds the Authorize → send → Challenge loop in tests; a
// well-behaved Authorizer needs two rounds at most (one for Basic, one for
// a token), three when a token that worked was revoked.
const maxRounds = 4

// do sends a request as the registry client will: Authorize, send, and on
// 401 Challenge and retry. It returns the final response, body read, or
// Challenge's error.
func do(ctx context.Context, t *testing.T, a *Authorizer, client *http.Client, method, rawURL string, body []byte, scopes []string) (*http.Response, []byte, error) {
	t.Helper()
	for range maxRounds {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		if err := a.Authorize(ctx, req, scopes); err != nil {
			return nil, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return resp, b, nil
		}
		if err := a.Challenge(ctx, resp, scopes); err != nil {
			return nil, nil, err
		}
	}
	t.Fatalf("%s %s: still 401 after %d rounds: the Authorizer loops", method, rawURL, maxRounds)
	return nil, nil, nil
}

// pushBlob uploads data to repo (monolithic upload) through the Authorizer
// with push scope and returns its digest.
func pushBlob(t *testing.T, a *Authorizer, client *http.Client, base, repo string, data []byte) (digest.Digest, error) {
	t.Helper()
	ctx := context.Background()
	scopes := []string{RepositoryScope(repo, true)}
	resp, _, err := do(ctx, t, a, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, scopes)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload to %s: %s", repo, resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	dgst := digest.FromBytes(data)
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	resp, _, err = do(ctx, t, a, client, http.MethodPut, loc.String(), data, scopes)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload to %s: %s", repo, resp.Status)
	}
	return dgst, nil
}

// getBlob fetches a blob through the Authorizer with pull scope.
func getBlob(t *testing.T, a *Authorizer, client *http.Client, base, repo string, dgst digest.Digest) ([]byte, error) {
	t.Helper()
	resp, b, err := do(context.Background(), t, a, client, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dgst.String(), nil,
		[]string{RepositoryScope(repo, false)})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get blob %s from %s: %s", dgst, repo, resp.Status)
	}
	return b, nil
}

// access: alice may do anything; everyone may pull public/*.
func access(user, repo string, actions []string) []string {
	if user == "alice" {
		return actions
	}
	if strings.HasPrefix(repo, "public/") {
		return []string{"pull"}
	}
	return nil
}

var users = map[string]string{"alice": "wonderland", "bob": "builder"}

// tokenRegistry starts a token server and a registry that trusts it.
func tokenRegistry(t *testing.T) (*testutil.TokenServer, string) {
	t.Helper()
	ts := testutil.StartTokenServer(t, users, access)
	r := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: ts.RegistryYAML()})
	return ts, "http://" + r.Host
}

func TestTokenRegistry(t *testing.T) {
	ts, base := tokenRegistry(t)
	client := http.DefaultClient
	alice := NewAuthorizer(client, static("alice", "wonderland"))
	anon := NewAuthorizer(client, nil)

	publicBlob, privateBlob := []byte("a public layer"), []byte("a private layer")
	publicDigest, err := pushBlob(t, alice, client, base, "public/app", publicBlob)
	if err != nil {
		t.Fatalf("alice pushes to public/app: %v", err)
	}
	privateDigest, err := pushBlob(t, alice, client, base, "private/app", privateBlob)
	if err != nil {
		t.Fatalf("alice pushes to private/app: %v", err)
	}

	t.Run("anonymous pull of a public repository", func(t *testing.T) {
		got, err := getBlob(t, anon, client, base, "public/app", publicDigest)
		if err != nil || !bytes.Equal(got, publicBlob) {
			t.Fatalf("getBlob = %q, %v", got, err)
		}
	})

	t.Run("anonymous pull of a private repository", func(t *testing.T) {
		before := len(ts.Requests())
		_, err := getBlob(t, anon, client, base, "private/app", privateDigest)
		if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "insufficient_scope") ||
			!strings.Contains(err.Error(), "repository:private/app:pull") {
			t.Fatalf("getBlob = %v, want ErrUnauthenticated naming insufficient_scope and the scope", err)
		}
		// One token, rejected once: no second fetch, no loop.
		if n := len(ts.Requests()) - before; n != 1 {
			t.Fatalf("%d token requests, want 1", n)
		}
	})

	t.Run("anonymous push", func(t *testing.T) {
		_, err := pushBlob(t, anon, client, base, "public/app", []byte("not allowed"))
		if !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Fatalf("pushBlob = %v, want ErrUnauthenticated", err)
		}
	})

	t.Run("credentials pull a private repository", func(t *testing.T) {
		got, err := getBlob(t, alice, client, base, "private/app", privateDigest)
		if err != nil || !bytes.Equal(got, privateBlob) {
			t.Fatalf("getBlob = %q, %v", got, err)
		}
	})

	t.Run("the token is cached", func(t *testing.T) {
		a := NewAuthorizer(client, static("alice", "wonderland"))
		before := len(ts.Requests())
		for i := range 5 {
			if _, err := getBlob(t, a, client, base, "private/app", privateDigest); err != nil {
				t.Fatalf("getBlob #%d: %v", i, err)
			}
		}
		got := ts.Requests()[before:]
		if len(got) != 1 || got[0].Method != http.MethodGet || got[0].User != "alice" || !got[0].Offline ||
			!slices.Equal(got[0].Scopes, []string{"repository:private/app:pull"}) {
			t.Fatalf("token requests for 5 pulls: %+v, want one GET as alice for pull", got)
		}
	})

	t.Run("concurrent challenges fetch one token", func(t *testing.T) {
		a := NewAuthorizer(client, static("bob", "builder"))
		before := len(ts.Requests())
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, base+"/v2/public/app/blobs/"+publicDigest.String(), nil)
				scopes := []string{RepositoryScope("public/app", false)}
				for range maxRounds {
					a.Authorize(context.Background(), req, scopes)
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusUnauthorized {
						if resp.StatusCode != http.StatusOK {
							errs <- fmt.Errorf("get blob: %s", resp.Status)
						}
						return
					}
					if err := a.Challenge(context.Background(), resp, scopes); err != nil {
						errs <- err
						return
					}
				}
				errs <- errors.New("still 401 after the rounds")
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := len(ts.Requests()) - before; n != 1 {
			t.Fatalf("%d token requests for 8 concurrent pulls, want 1", n)
		}
	})
}

// TestTokenExpiry moves the Authorizer's clock past the tokens' lifetime:
// a new token comes by the refresh token, by GET where POST is not served,
// and by password when the refresh token was revoked.
func TestTokenExpiry(t *testing.T) {
	ts, base := tokenRegistry(t)
	ts.SetExpiry(30 * time.Second)
	client := http.DefaultClient
	alice, clock := newTestAuthorizer(client, static("alice", "wonderland"))
	dgst, err := pushBlob(t, alice, client, base, "private/app", []byte("layer"))
	if err != nil {
		t.Fatal(err)
	}

	// pull pulls and returns the token requests it caused.
	pull := func(t *testing.T, a *Authorizer, repo string) []testutil.TokenRequest {
		t.Helper()
		before := len(ts.Requests())
		if _, err := getBlob(t, a, client, base, repo, dgst); err != nil {
			t.Fatalf("getBlob: %v", err)
		}
		return ts.Requests()[before:]
	}
	if reqs := ts.Requests(); len(reqs) != 1 || reqs[0].Method != http.MethodGet || !reqs[0].Offline {
		t.Fatalf("push: token requests %+v, want one GET asking for a refresh token", reqs)
	}
	// Other scopes, another token: the refresh token from the push's GET
	// gets it.
	reqs := pull(t, alice, "private/app")
	if len(reqs) != 1 || reqs[0].GrantType != "refresh_token" || reqs[0].Status != 200 {
		t.Fatalf("first pull: token requests %+v, want one refresh_token POST", reqs)
	}

	clock.Advance(20 * time.Second)
	if reqs := pull(t, alice, "private/app"); len(reqs) != 0 {
		t.Fatalf("pull 20s into a 30s token: token requests %+v, want none", reqs)
	}

	clock.Advance(15 * time.Second)
	reqs = pull(t, alice, "private/app")
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].GrantType != "refresh_token" || reqs[0].User != "alice" || reqs[0].Status != 200 {
		t.Fatalf("pull after expiry: token requests %+v, want one refresh_token POST", reqs)
	}

	ts.FailPOST(http.StatusMethodNotAllowed)
	clock.Advance(time.Minute)
	reqs = pull(t, alice, "private/app")
	if len(reqs) != 2 || reqs[0].Method != http.MethodPost || reqs[0].Status != 405 ||
		reqs[1].Method != http.MethodGet || reqs[1].User != "alice" || reqs[1].Status != 200 {
		t.Fatalf("pull with POST refused: token requests %+v, want POST 405 then GET as alice", reqs)
	}

	ts.FailPOST(0)
	ts.RevokeRefreshTokens()
	clock.Advance(time.Minute)
	reqs = pull(t, alice, "private/app")
	if len(reqs) != 2 || reqs[0].GrantType != "refresh_token" || reqs[0].Status != 401 ||
		reqs[1].Method != http.MethodGet || reqs[1].Status != 200 {
		t.Fatalf("pull with the refresh token revoked: token requests %+v, want POST 401 then GET", reqs)
	}

	if _, err := pushBlob(t, alice, client, base, "public/app", []byte("layer")); err != nil {
		t.Fatal(err)
	}
	anon, anonClock := newTestAuthorizer(client, nil)
	pull(t, anon, "public/app")
	anonClock.Advance(time.Minute)
	reqs = pull(t, anon, "public/app")
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].User != "" || reqs[0].Offline {
		t.Fatalf("anonymous pull after expiry: token requests %+v, want one anonymous GET", reqs)
	}
}

// TestIdentityToken uses a refresh token in place of a password, as
// docker's config.json identitytoken.
func TestIdentityToken(t *testing.T) {
	ts, base := tokenRegistry(t)
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"},
		"service": {ts.Service}, "client_id": {"test"}, "access_type": {"offline"}}
	resp, err := http.PostForm(ts.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	err = jsonDecode(resp, &body)
	if err != nil || body.RefreshToken == "" {
		t.Fatalf("get a refresh token: %v, %+v", err, body)
	}

	a := NewAuthorizer(nil, static("", body.RefreshToken))
	before := len(ts.Requests())
	resp2, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, base+"/v2/private/app/tags/list", nil,
		[]string{RepositoryScope("private/app", false)})
	if err != nil || resp2.StatusCode != http.StatusNotFound { // authorized; the repository is empty
		t.Fatalf("tags/list with an identity token: %v, %v", resp2, err)
	}
	reqs := ts.Requests()[before:]
	if len(reqs) != 1 || reqs[0].GrantType != "refresh_token" || reqs[0].User != "alice" {
		t.Fatalf("token requests %+v, want one refresh_token POST", reqs)
	}

	bogus := "bogus-identity-token-3f9a"
	a = NewAuthorizer(nil, static("", bogus))
	_, _, err = do(context.Background(), t, a, http.DefaultClient, http.MethodGet, base+"/v2/private/app/tags/list", nil,
		[]string{RepositoryScope("private/app", false)})
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), bogus) {
		t.Fatalf("bogus identity token: %v, want ErrUnauthenticated with the status and without the token", err)
	}
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func TestWrongPassword(t *testing.T) {
	ts, base := tokenRegistry(t)
	const password = "not-the-password-7c41"
	a := NewAuthorizer(nil, static("alice", password))
	before := len(ts.Requests())
	_, _, err := do(context.Background(), t, a, http.DefaultClient, http.MethodGet, base+"/v2/private/app/tags/list", nil,
		[]string{RepositoryScope("private/app", false)})
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v, want ErrUnauthenticated", err)
	}
	msg := err.Error()
	if strings.Contains(msg, password) || !strings.Contains(msg, "401") || !strings.Contains(msg, "authentication failed") ||
		!strings.Contains(msg, ts.URL) {
		t.Fatalf("wrong password: error %q, want the realm, the status and the server's text, and no password", msg)
	}
	if n := len(ts.Requests()) - before; n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func TestBasicRegistry(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, users)})
	v2 := "http://" + r.Host + "/v2/"
	ctx := context.Background()

	_, _, err := do(ctx, t, NewAuthorizer(nil, nil), http.DefaultClient, http.MethodGet, v2, nil, nil)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "no username and password") {
		t.Fatalf("no credentials: %v, want ErrUnauthenticated saying none are configured", err)
	}

	a := NewAuthorizer(nil, static("bob", "builder"))
	for i := range 2 {
		resp, _, err := do(ctx, t, a, http.DefaultClient, http.MethodGet, v2, nil, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/ as bob, #%d: %v, %v", i, resp, err)
		}
	}
	// Once the host asked for Basic, the credentials go out up front.
	req, _ := http.NewRequest(http.MethodGet, v2, nil)
	if err := a.Authorize(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	if u, p, ok := req.BasicAuth(); !ok || u != "bob" || p != "builder" {
		t.Fatalf("Authorize set %q, want bob's Basic credentials", req.Header.Get("Authorization"))
	}

	const password = "wonderlandz-91d"
	_, _, err = do(ctx, t, NewAuthorizer(nil, static("alice", password)), http.DefaultClient, http.MethodGet, v2, nil, nil)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), password) {
		t.Fatalf("wrong password: %v, want ErrUnauthenticated without the password", err)
	}
}

// TestTLSRegistry runs an HTTPS registry with token auth (the token server
// on plain http loopback, which is allowed), and one that requires client
// certificates.
func TestTLSRegistry(t *testing.T) {
	ca := testutil.NewCA(t)
	ts := testutil.StartTokenServer(t, users, access)
	r := testutil.StartRegistry(t, testutil.RegistryConfig{HTTPExtra: ca.RegistryTLS(t, false), ExtraYAML: ts.RegistryYAML()})
	base := "https://" + r.Host
	newClient := func(cfg *tls.Config) *http.Client {
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}

	trusting := newClient(&tls.Config{RootCAs: ca.Pool})
	alice := NewAuthorizer(trusting, static("alice", "wonderland"))
	dgst, err := pushBlob(t, alice, trusting, base, "public/app", []byte("over TLS"))
	if err != nil {
		t.Fatalf("push over TLS: %v", err)
	}
	if got, err := getBlob(t, NewAuthorizer(trusting, nil), trusting, base, "public/app", dgst); err != nil || string(got) != "over TLS" {
		t.Fatalf("anonymous pull over TLS: %q, %v", got, err)
	}

	untrusting := newClient(&tls.Config{RootCAs: x509.NewCertPool()})
	_, _, err = do(context.Background(), t, NewAuthorizer(untrusting, nil), untrusting, http.MethodGet, base+"/v2/", nil, nil)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("without the CA: %v, want an x509.UnknownAuthorityError", err)
	}

	mtls := testutil.StartRegistry(t, testutil.RegistryConfig{HTTPExtra: ca.RegistryTLS(t, true)})
	pair, err := tls.LoadX509KeyPair(ca.IssueClient(t, "strata"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := newClient(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{pair}})
	resp, _, err := do(context.Background(), t, NewAuthorizer(withCert, nil), withCert, http.MethodGet, "https://"+mtls.Host+"/v2/", nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("with a client certificate: %v, %v", resp, err)
	}
	if _, _, err := do(context.Background(), t, NewAuthorizer(trusting, nil), trusting, http.MethodGet, "https://"+mtls.Host+"/v2/", nil, nil); err == nil {
		t.Fatal("without a client certificate: the registry answered")
	}
}
