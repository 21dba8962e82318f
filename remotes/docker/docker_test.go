package docker_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// env is a store in a temporary root and a puller fetching through a
// resolver made with the test's options. The store is closed and its
// mounts undone when the test ends, whatever happened.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *wiring.Store
	r     *docker.Resolver
	p     *pull.Puller
}

func newEnv(t *testing.T, opts docker.Options) *env {
	t.Helper()
	st, ctx := storetest.Open(t)
	if opts.RetryBase == 0 {
		opts.RetryBase = 10 * time.Millisecond
	}
	r := docker.NewResolver(opts)
	return &env{t: t, ctx: ctx, store: st, r: r, p: pull.New(st, r)}
}

// pullImage pulls ref and checks the result against fx: the image record
// names ref and points at the fixture's root, every blob of the fixture
// (a one-platform image) is stored, and the unpacked tree is the
// fixture's.
func (e *env) pullImage(ref string, fx testutil.Fixture) {
	t := e.t
	t.Helper()
	img, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
	if err != nil {
		t.Fatalf("Pull(%q) = %v", ref, err)
	}
	if img.Target.Digest != fx.Root.Digest || img.Target.MediaType != fx.Root.MediaType || img.Target.Size != fx.Root.Size {
		t.Fatalf("Pull(%q): image target = %+v, want %+v", ref, img.Target, fx.Root)
	}
	if want := mustRef(t, ref).String(); img.Name != want {
		t.Fatalf("Pull(%q): image name = %q, want %q", ref, img.Name, want)
	}
	cs := e.store.DB.ContentStore()
	for d := range fx.Blobs {
		if _, err := cs.Info(e.ctx, d); err != nil {
			t.Errorf("Pull(%q): blob %s: %v", ref, d, err)
		}
	}
	wantTree(t, fx.Tree, e.tree(img.Name))
}

// noImages fails the test if a failed pull left an image record.
func (e *env) noImages() {
	e.t.Helper()
	imgs, err := e.store.DB.Images().List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(imgs) != 0 {
		e.t.Fatalf("a failed pull left images %v", imgs)
	}
}

// tree mounts the unpacked image name (host platform) read-only and reads it.
func (e *env) tree(name string) map[string]testutil.TreeEntry {
	e.t.Helper()
	return storetest.Tree(e.t, e.ctx, e.store, name)
}

func wantTree(t *testing.T, want, got map[string]testutil.TreeEntry) {
	t.Helper()
	storetest.WantTree(t, want, got)
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// manifestOf decodes the fixture's root, a manifest.
func manifestOf(t *testing.T, fx testutil.Fixture) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[fx.Root.Digest], &m); err != nil {
		t.Fatalf("decode manifest %s: %v", fx.Root.Digest, err)
	}
	return m
}

// writeHosts writes dir/<host>/hosts.toml.
func writeHosts(t *testing.T, dir, host, toml string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pushFront starts a plain-HTTP reverse proxy to the registry at target
// ("http://…" or "https://…") for the fixture helpers, which push over
// plain HTTP without credentials: the front adds authorization (when not
// ""), speaks TLS through tr (nil for the default transport) and points
// upload locations back at itself. It returns the front's host; the
// fixtures' Ref then names the front, not the registry.
func pushFront(t *testing.T, target string, tr http.RoundTripper, authorization string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	host := srv.Listener.Addr().String()
	srv.Config.Handler = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// The registry builds upload locations from Host and the
			// forwarded scheme: both are the front's.
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("X-Forwarded-Proto", "http")
			if authorization != "" {
				pr.Out.Header.Set("Authorization", authorization)
			}
		},
		Transport: tr,
		ModifyResponse: func(resp *http.Response) error {
			if loc, err := url.Parse(resp.Header.Get("Location")); err == nil && loc.Host != "" {
				loc.Scheme, loc.Host = "http", host
				resp.Header.Set("Location", loc.String())
			}
			return nil
		},
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return host
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// bearerToken asks ts for a token granting scopes to user.
func bearerToken(t *testing.T, ts *testutil.TokenServer, user, password string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {ts.Service}, "scope": scopes}
	req, err := http.NewRequest(http.MethodGet, ts.URL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK || tr.Token == "" {
		t.Fatalf("token for %s %v: %s, %v", user, scopes, resp.Status, err)
	}
	return tr.Token
}

// staticCredentials answers user and password for every host and records
// the hosts asked about.
type staticCredentials struct {
	user, password string
	mu             sync.Mutex
	hosts          []string
}

func (c *staticCredentials) get(ctx context.Context, host string) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hosts = append(c.hosts, host)
	return c.user, c.password, nil
}

func (c *staticCredentials) asked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.hosts)
}

// logBuffer collects a resolver's log, written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// noSecret fails the test if text holds a secret in clear or in the
// base64 of a Basic header.
func noSecret(t *testing.T, what, text, user string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(user+":"+s))) {
			t.Errorf("%s holds the password %q:\n%s", what, s, text)
		}
	}
}

// TestPullPlainHTTP pulls from a plain-HTTP registry on 127.0.0.1 without
// hosts.toml: a loopback registry is tried with https first and used over
// http once it answers plain HTTP (once per resolver); with PlainHTTP, no
// TLS is tried at all.
func TestPullPlainHTTP(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "plain/app", "v1")
	for _, tc := range []struct {
		name      string
		plainHTTP bool
		host      func(port string) string
		wantTLS   int
	}{
		{name: "loopback falls back to http", wantTLS: 1},
		{name: "localhost falls back to http", host: func(port string) string { return "localhost:" + port }, wantTLS: 1},
		{name: "PlainHTTP", plainHTTP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := startTCPFront(t, reg.Host)
			host := front.Host
			if tc.host != nil {
				_, port, _ := net.SplitHostPort(front.Host)
				host = tc.host(port)
			}
			e := newEnv(t, docker.Options{PlainHTTP: tc.plainHTTP})
			e.pullImage(host+"/plain/app:v1", fx)
			tlsConns, plainConns := front.counts()
			if tlsConns != tc.wantTLS || plainConns == 0 {
				t.Fatalf("the registry saw %d TLS and %d plain connections, want %d TLS and some plain", tlsConns, plainConns, tc.wantTLS)
			}
		})
	}
}

// TestPullBasicAuth pulls from a registry asking for HTTP Basic
// authentication (htpasswd).
func TestPullBasicAuth(t *testing.T) {
	const user, password = "carol", "basic-secret-5d1e"
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{user: password})})
	fx := testutil.PushWhiteoutImage(t, pushFront(t, "http://"+reg.Host, nil, basicAuth(user, password)), "basic/app", "v1")
	ref := reg.Host + "/basic/app:v1"

	t.Run("no credentials", func(t *testing.T) {
		var log logBuffer
		e := newEnv(t, docker.Options{Logger: log.logger()})
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), reg.Host) {
			t.Fatalf("Pull(%q) without credentials = %v, want ErrUnauthenticated naming %s", ref, err, reg.Host)
		}
		e.noImages()
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-it-83c2"
		var log logBuffer
		creds := &staticCredentials{user: user, password: wrong}
		e := newEnv(t, docker.Options{Credentials: creds.get, Logger: log.logger()})
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), reg.Host) {
			t.Fatalf("Pull(%q) with a wrong password = %v, want ErrUnauthenticated naming %s", ref, err, reg.Host)
		}
		noSecret(t, "the error", err.Error(), user, wrong, password)
		noSecret(t, "the log", log.String(), user, wrong, password)
		e.noImages()
	})
	t.Run("credentials", func(t *testing.T) {
		var log logBuffer
		creds := &staticCredentials{user: user, password: password}
		e := newEnv(t, docker.Options{Credentials: creds.get, Logger: log.logger()})
		e.pullImage(ref, fx)
		noSecret(t, "the log", log.String(), user, password)
		asked := creds.asked()
		if len(asked) == 0 {
			t.Fatal("the credentials were never asked for")
		}
		for _, h := range asked {
			if h != reg.Host {
				t.Fatalf("credentials asked for host %q, want %q", h, reg.Host)
			}
		}
	})
}

// TestPullTokenAuth pulls from a registry that wants Bearer tokens from a
// token server: public/* may be pulled anonymously, private/* only by
// alice. A pull asks for a token once per scope, not once per blob.
func TestPullTokenAuth(t *testing.T) {
	const password = "token-secret-a9f0"
	access := func(user, repo string, actions []string) []string {
		if user == "alice" {
			return actions
		}
		if strings.HasPrefix(repo, "public/") {
			return []string{"pull"}
		}
		return nil
	}
	ts := testutil.StartTokenServer(t, map[string]string{"alice": password}, access)
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: ts.RegistryYAML()})
	tok := bearerToken(t, ts, "alice", password, "repository:public/app:pull,push", "repository:private/app:pull,push")
	front := pushFront(t, "http://"+reg.Host, nil, "Bearer "+tok)
	pub := testutil.PushWhiteoutImage(t, front, "public/app", "v1")
	priv := testutil.PushDockerSchema2(t, front, "private/app", "v1")

	// tokenRequests runs pull and returns the token requests it made.
	tokenRequests := func(pull func()) []testutil.TokenRequest {
		before := len(ts.Requests())
		pull()
		return ts.Requests()[before:]
	}
	checkRequests := func(t *testing.T, reqs []testutil.TokenRequest, repo, user string) {
		t.Helper()
		t.Logf("token requests: %+v", reqs)
		if len(reqs) == 0 || len(reqs) > 2 {
			t.Fatalf("the pull made %d token requests, want 1 or 2 (one per scope): %+v", len(reqs), reqs)
		}
		for _, r := range reqs {
			if r.User != user || r.Status != http.StatusOK {
				t.Errorf("token request %+v, want one by %q answered 200", r, user)
			}
			for _, s := range r.Scopes {
				if s != "repository:"+repo+":pull" {
					t.Errorf("token request for scope %q, want only repository:%s:pull", s, repo)
				}
			}
		}
	}

	t.Run("anonymous public", func(t *testing.T) {
		e := newEnv(t, docker.Options{})
		reqs := tokenRequests(func() { e.pullImage(reg.Host+"/public/app:v1", pub) })
		checkRequests(t, reqs, "public/app", "")
	})
	t.Run("anonymous private", func(t *testing.T) {
		e := newEnv(t, docker.Options{})
		ref := reg.Host + "/private/app:v1"
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), mustRef(t, ref).String()) {
			t.Fatalf("anonymous Pull(%q) = %v, want ErrUnauthenticated naming the reference", ref, err)
		}
		e.noImages()
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-it-61b7"
		var log logBuffer
		e := newEnv(t, docker.Options{Credentials: (&staticCredentials{user: "alice", password: wrong}).get, Logger: log.logger()})
		ref := reg.Host + "/private/app:v1"
		_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
		if !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Fatalf("Pull(%q) with a wrong password = %v, want ErrUnauthenticated", ref, err)
		}
		noSecret(t, "the error", err.Error(), "alice", wrong, password)
		noSecret(t, "the log", log.String(), "alice", wrong, password)
		e.noImages()
	})
	t.Run("credentials private", func(t *testing.T) {
		var log logBuffer
		e := newEnv(t, docker.Options{Credentials: (&staticCredentials{user: "alice", password: password}).get, Logger: log.logger()})
		reqs := tokenRequests(func() { e.pullImage(reg.Host+"/private/app:v1", priv) })
		checkRequests(t, reqs, "private/app", "alice")
		noSecret(t, "the log", log.String(), "alice", password)
	})
}

// TestPullMirror pulls through a pull-through cache configured as a mirror
// in hosts.toml, then, with the mirror down, from the upstream.
func TestPullMirror(t *testing.T) {
	upstream := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, upstream.Host, "mirrored/app", "v1")
	// The client reaches the upstream through a proxy that counts its
	// requests; the mirror reaches it directly.
	direct := testutil.StartProxy(t, upstream.Host)
	mirror := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: "proxy:\n  remoteurl: http://" + upstream.Host + "\n"})
	dir := t.TempDir()
	writeHosts(t, dir, direct.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
		"http://"+direct.Host, "http://"+mirror.Host))
	ref := direct.Host + "/mirrored/app:v1"

	e := newEnv(t, docker.Options{HostsDir: dir})
	e.pullImage(ref, fx)
	if reqs := direct.Requests(); len(reqs) != 0 {
		t.Fatalf("with the mirror up the client asked the upstream directly: %+v", reqs)
	}
	m := manifestOf(t, fx)
	for _, want := range []string{"/v2/mirrored/app/manifests/v1", "GET /v2/mirrored/app/blobs/" + m.Layers[0].Digest.String()} {
		if !mirror.WaitLog(want) {
			t.Fatalf("the mirror's log lacks %q:\n%s", want, mirror.Log())
		}
	}

	mirror.Stop()
	e2 := newEnv(t, docker.Options{HostsDir: dir})
	e2.pullImage(ref, fx)
	for _, l := range m.Layers {
		if n := direct.Count(http.MethodGet, "/blobs/"+l.Digest.String()); n != 1 {
			t.Errorf("with the mirror down, layer %s was fetched %d times from the upstream, want 1", l.Digest, n)
		}
	}
}

// TestHostsDirNames finds a registry's hosts.toml under each directory name
// containerd looks for: "<host>:<port>", containerd's "<host>_<port>_"
// (for file systems without ':') and "_default". The file makes a counting
// proxy the registry's mirror, so the proxy's requests show it was read.
func TestHostsDirNames(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushDockerSchema2(t, reg.Host, "dirs/app", "v1")
	mirror := testutil.StartProxy(t, reg.Host)
	hostname, port, err := net.SplitHostPort(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	for _, dirName := range []string{reg.Host, hostname + "_" + port + "_", "_default"} {
		t.Run(dirName, func(t *testing.T) {
			mirror.Reset()
			dir := t.TempDir()
			writeHosts(t, dir, dirName, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
				"http://"+reg.Host, "http://"+mirror.Host))
			r := docker.NewResolver(docker.Options{HostsDir: dir, RetryBase: 10 * time.Millisecond})
			ref := mustRef(t, reg.Host+"/dirs/app:v1")
			repo, err := r.Repository(ref)
			if err != nil {
				t.Fatalf("Repository(%q) = %v", ref, err)
			}
			desc, err := repo.Resolve(context.Background())
			if err != nil || desc.Digest != fx.Root.Digest {
				t.Fatalf("Resolve(%q) = %+v, %v; want %s", ref, desc, err, fx.Root.Digest)
			}
			if mirror.Count("", "/manifests/v1") == 0 {
				t.Fatalf("%s/hosts.toml was not used: its mirror got no request", dirName)
			}
		})
	}
}
