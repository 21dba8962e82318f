package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/testutil"
)

func TestPullCommand(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})

	out := c.ok("pull", "-q", fx.Ref)
	if strings.TrimSpace(out) != fx.Root.Digest.String() {
		t.Fatalf("pull -q printed %q, want the digest %s", out, fx.Root.Digest)
	}
	ls := c.ok("images", "ls", "-q")
	if strings.TrimSpace(ls) != fx.Ref {
		t.Fatalf("images ls -q = %q, want %q", ls, fx.Ref)
	}
	// Plain progress names the layers and ends with a summary.
	r := c.run("pull", "--progress", "plain", fx.Ref)
	if r.code != 0 || !strings.Contains(r.stderr, "layer sha256:") || !strings.Contains(r.stdout, fx.Ref+": "+fx.Root.Digest.String()) {
		t.Fatalf("pull --progress plain: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	c.fails(2, "reference", "pull", "Bad:Ref")
	c.fails(2, "linux/nonsense/x/y", "pull", "--platform", "linux/nonsense/x/y", fx.Ref)
	c.fails(1, "not found", "pull", reg.Host+"/cli/app:nope")
	c.fails(2, "--max-concurrent-downloads", "pull", "--max-concurrent-downloads", "0", fx.Ref)
	c.ok("fsck")
}

func TestLoginLogout(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{"alice": "s3cret-pw"})})
	c := newCLI(t)
	home := t.TempDir()
	c.env = append(c.env, "DOCKER_CONFIG="+home)

	r := c.runIn(strings.NewReader("wrong-pw\n"), "login", "-u", "alice", "--password-stdin", reg.Host)
	if r.code != 1 || strings.Contains(r.stderr, "wrong-pw") || !strings.Contains(r.stderr, reg.Host) {
		t.Fatalf("login with a wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "config.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed login wrote config.json: %v", err)
	}
	r = c.runIn(strings.NewReader("s3cret-pw\n"), "login", "-u", "alice", "--password-stdin", reg.Host)
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") || strings.Contains(r.stderr+r.stdout, "s3cret") {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	st, err := os.Stat(filepath.Join(home, "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json after login: %v, mode %v; want 0600", err, st.Mode())
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, _ := os.ReadFile(filepath.Join(home, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Auths[reg.Host].Auth == "" {
		t.Fatalf("config.json = %s; want an auths entry for %s", b, reg.Host)
	}
	// Pushing a fixture needs an open registry; pulling what is not there
	// proves the credentials are used: 404 (not 401) from the registry.
	r = c.run("pull", reg.Host+"/private/app:1")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("pull with stored credentials: exit %d, stderr %q; want not found", r.code, r.stderr)
	}
	c.ok("logout", reg.Host)
	r = c.run("pull", reg.Host+"/private/app:1")
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "unauthenticated") && !strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
		t.Fatalf("pull after logout: exit %d, stderr %q; want an authentication error", r.code, r.stderr)
	}
	c.fails(1, "not logged in", "logout", reg.Host)
}

func TestPushCommand(t *testing.T) {
	src := testutil.StartRegistry(t, testutil.RegistryConfig{})
	dst := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, src.Host, "cli/app", "v1")
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	c.ok("pull", "-q", fx.Ref)
	target := dst.Host + "/copied/app:v2"
	out := c.ok("push", "-q", target, fx.Ref)
	if strings.TrimSpace(out) != fx.Root.Digest.String() {
		t.Fatalf("push -q printed %q, want %s", out, fx.Root.Digest)
	}
	_, dg := testutil.FetchManifest(t, dst.Host, "copied/app", "v2")
	if dg != fx.Root.Digest.String() {
		t.Fatalf("pushed manifest has digest %s, want %s", dg, fx.Root.Digest)
	}
	c.fails(1, "not found", "push", dst.Host+"/x:1", "nothing/here:1")
}

// TestPullInterrupt: Ctrl-C stops a pull promptly; it leaves no image, and
// GC removes what it had fetched.
func TestPullInterrupt(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	testutil.PushRandomImage(t, reg.Host, "slow/app", "v1", 2, 1<<20)
	proxy.Add(testutil.Fault{Method: "GET", Path: "/blobs/", Delay: time.Minute})
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	cmd := c.cmd(nil, "pull", "--progress", "plain", proxy.Host+"/slow/app:v1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for proxy.Count("GET", "/blobs/sha256") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the pull never asked for its blobs: %+v", proxy.Requests())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "interrupted") {
			t.Fatalf("interrupted pull: %v, stderr %q; want exit 1 saying interrupted", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pull did not stop within 10s of SIGINT")
	}
	if out := c.ok("images", "ls", "-q"); out != "" {
		t.Fatalf("an interrupted pull left images: %q", out)
	}
	c.ok("gc")
	if out := c.ok("content", "ls", "-q"); out != "" {
		t.Fatalf("after GC an interrupted pull left blobs: %q", out)
	}
	if out := c.ok("snapshots", "ls", "-q"); out != "" {
		t.Fatalf("after GC an interrupted pull left snapshots: %q", out)
	}
}

// TestConcurrentEmbeddedPulls: ten strata processes pulling one image into
// one root at once, without a daemon, all succeed (they take turns with the
// store) and leave one complete image.
func TestConcurrentEmbeddedPulls(t *testing.T) {
	embeddedOnly(t, "concurrent processes opening one root in-process")
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	const n = 10
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() { results <- c.run("pull", "-q", fx.Ref) }()
	}
	for i := 0; i < n; i++ {
		r := <-results
		if r.code != 0 || strings.TrimSpace(r.stdout) != fx.Root.Digest.String() {
			t.Errorf("one of %d concurrent pulls: exit %d, stdout %q, stderr %q", n, r.code, r.stdout, r.stderr)
		}
	}
	if ls := c.ok("images", "ls", "-q"); strings.TrimSpace(ls) != fx.Ref {
		t.Fatalf("images ls -q = %q, want %q", ls, fx.Ref)
	}
	if out := c.ok("images", "check"); !strings.Contains(out, "complete") {
		t.Fatalf("images check = %q", out)
	}
	c.ok("fsck")
}
