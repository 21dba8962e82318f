package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/wiring"
)

// daemonCLI is a CLI that goes through a daemon of its own, whatever the
// mode of the test run.
func daemonCLI(t *testing.T) *cli {
	d := servertest.Start(t)
	c := &cli{t: t, root: d.Store.Root, daemon: d}
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	return c
}

// TestClientModeChoice: --address and $STRATA_ADDRESS go through a daemon
// (and fail when it does not answer), --root opens the store here.
func TestClientModeChoice(t *testing.T) {
	c := daemonCLI(t)
	c.ok("namespaces", "create", "through-daemon")

	run := func(env []string, args ...string) result {
		t.Helper()
		return (&cli{t: t, bare: true, env: env}).run(args...)
	}
	// The environment names the daemon: its namespaces, not a fresh root's.
	if r := run([]string{addressEnv + "=" + c.daemon.Address}, "namespaces", "ls", "-q"); r.code != 0 || !strings.Contains(r.stdout, "through-daemon") {
		t.Fatalf("namespaces ls with %s = %+v", addressEnv, r)
	}
	// --root beats the environment: a store of its own, opened here.
	other := t.TempDir()
	if r := run([]string{addressEnv + "=" + c.daemon.Address}, "--root", other, "namespaces", "ls", "-q"); r.code != 0 || strings.Contains(r.stdout, "through-daemon") {
		t.Fatalf("namespaces ls --root with %s = %+v", addressEnv, r)
	}
	if _, err := os.Stat(filepath.Join(other, "metadata.db")); err != nil {
		t.Fatalf("--root did not open its store: %v", err)
	}
	if r := run(nil, "--root", other, "--address", c.daemon.Address, "images", "ls"); r.code != 2 || !strings.Contains(r.stderr, "--root and --address exclude each other") {
		t.Fatalf("--root with --address = %+v", r)
	}
	// A named daemon that does not answer is an error, not a silent
	// fallback to some other store.
	gone := filepath.Join(t.TempDir(), "none.sock")
	for _, r := range []result{
		run(nil, "--address", gone, "images", "ls"),
		run([]string{addressEnv + "=" + gone}, "images", "ls"),
	} {
		if r.code != 1 || !strings.Contains(r.stderr, "daemon at "+gone) {
			t.Fatalf("images ls against no daemon = %+v", r)
		}
	}
	// While the daemon holds its root, embedded mode on it says where to go.
	if r := run(nil, "--root", c.root, "images", "ls"); r.code != 1 || !strings.Contains(r.stderr, "locked by another process") || !strings.Contains(r.stderr, "--address") {
		t.Fatalf("images ls --root of the daemon's root = %+v", r)
	}
	// version names the daemon it would go through, or why it cannot.
	if out := c.ok("version"); !strings.Contains(out, "stratad test at "+c.daemon.Address+"\n") {
		t.Fatalf("version through the daemon = %q", out)
	}
	if r := run(nil, "--address", gone, "version"); r.code != 1 || !strings.Contains(r.stdout, "stratad at "+gone+": ") {
		t.Fatalf("version against no daemon = %+v", r)
	}
	if r := run(nil, "--root", other, "version"); r.code != 0 || strings.Contains(r.stdout, "stratad") {
		t.Fatalf("version in embedded mode = %+v", r)
	}
	// plugins ls shows the daemon's parts, the jobs service among them.
	if out := c.ok("plugins", "ls", "-q", "type==io.strata.grpc.v1"); out != "jobs\n" {
		t.Fatalf("plugins ls of the daemon = %q", out)
	}
}

// TestPullSurvivesKill: a pull started through the daemon goes on to the
// end when the CLI that started it is killed, and leaves what a pull
// leaves: the image, unpacked, no lease of its own.
func TestPullSurvivesKill(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	proxy := testutil.StartProxy(t, reg.Host)
	testutil.PushRandomImage(t, reg.Host, "slow/app", "v1", 3, 1<<20)
	// Every blob waits: the CLI dies while the pull is downloading.
	proxy.Add(testutil.Fault{Method: "GET", Path: "/blobs/", Delay: time.Second})
	c := daemonCLI(t)
	ref := proxy.Host + "/slow/app:v1"
	cmd := c.cmd(nil, "pull", "--progress", "plain", ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for proxy.Count("GET", "/blobs/sha256") < 1 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the pull never asked for its blobs: %+v", proxy.Requests())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if out := c.ok("images", "ls", "-q"); out != "" {
		t.Fatalf("the pull was done before the CLI was killed (%q): the test proves nothing", out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for c.ok("images", "ls", "-q") != ref+"\n" {
		if time.Now().After(deadline) {
			t.Fatalf("the pull did not finish in the daemon after its CLI was killed: images %q", c.ok("images", "ls", "-q"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rows := decodeOut[[]imageCheckRow](t, c.ok("images", "check", "-o", "json")); len(rows) != 1 || rows[0].Status != "complete" || len(rows[0].Unpacked) != 1 {
		t.Fatalf("images check after the pull = %+v, want complete and unpacked", rows)
	}
	// The pull's lease goes when it ends (only then may GC take what the
	// image does not hold).
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ls, err := s.DB.Leases().List(ctx, `labels."strata.pull"`)
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("leases of the pull left: %+v", ls)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if out := c.ok("fsck"); !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("fsck = %q", out)
	}
}

// TestClientModeNonRoot: a user in the socket's group (here: nobody, the
// socket opened to all) gets archives streamed through the CLI, files
// that are theirs, and the daemon opens no path for them.
func TestClientModeNonRoot(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "nr/app", "v1")
	c := daemonCLI(t)
	c.ok("pull", "-q", fx.Ref)

	// The daemon's socket, and a copy of this binary, reachable by nobody.
	testutil.OpenToAll(t, c.daemon.Address)
	nobody := testutil.AsNobody(t, "strata")
	home := t.TempDir()
	if err := os.Chown(home, testutil.Nobody, testutil.Nobody); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		t.Helper()
		cmd := nobody([]string{"STRATA_TEST_MAIN=1", "HOME=" + home, "PATH=/usr/bin:/bin"}, append([]string{"--address", c.daemon.Address}, args...)...)
		cmd.Dir = home
		return runCmd(t, cmd)
	}
	if r := run("images", "ls", "-q"); r.code != 0 || r.stdout != fx.Ref+"\n" {
		t.Fatalf("images ls as nobody = %+v", r)
	}
	// Export to a relative path: written by this process, owned by nobody.
	if r := run("images", "export", "app.tar", fx.Ref); r.code != 0 {
		t.Fatalf("images export as nobody = %+v", r)
	}
	st, err := os.Stat(filepath.Join(home, "app.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; owner != testutil.Nobody || st.Size() == 0 {
		t.Fatalf("exported archive: owner %d, %d bytes; want nobody's, not empty", owner, st.Size())
	}
	// Import of that file: streamed to the daemon, unpacked there.
	if r := run("images", "import", "--base-name", "example.com/nr", "--digests", "app.tar"); r.code != 0 || !strings.Contains(r.stdout, "example.com/nr@") {
		t.Fatalf("images import as nobody = %+v", r)
	}
	// A path for the daemon to open, from a non-root user: the CLI says
	// no, and the daemon would too.
	if r := run("pull", "--hosts-dir", home, fx.Ref); r.code != 2 || !strings.Contains(r.stderr, "--hosts-dir: stratad opens paths for root only") {
		t.Fatalf("pull --hosts-dir as nobody = %+v", r)
	}
	// The daemon refuses such paths itself, knowing the peer's uid from
	// the kernel: a client that asks anyway.
	for _, req := range []string{
		`{"export": {"path": "` + filepath.Join(home, "refused.tar") + `", "images": ["` + fx.Ref + `"]}}`,
		`{"import": {"path": "/etc/shadow"}}`,
		`{"pull": {"ref": "` + fx.Ref + `", "registry": {"hosts_dir": "/root"}}}`,
	} {
		cmd := nobody([]string{"STRATA_TEST_RUNJOB=" + c.daemon.Address, "HOME=" + home})
		cmd.Stdin = strings.NewReader(req)
		if r := runCmd(t, cmd); r.code != 1 || !strings.Contains(r.stdout, "the daemon opens paths as root, for root only (uid 65534)") || !strings.Contains(r.stdout, "permission denied") {
			t.Fatalf("job %s from nobody = %+v", req, r)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "refused.tar")); err == nil {
		t.Fatal("the refused export wrote its archive")
	}
	// Checking the store is anyone's on the socket; repairing it, which
	// removes what other users' namespaces hold, is root's (issue 11,
	// item 5).
	if r := run("fsck"); r.code != 0 || !strings.HasSuffix(r.stdout, ": ok\n") {
		t.Fatalf("fsck as nobody = %+v", r)
	}
	if r := run("fsck", "--repair"); r.code != 1 || !strings.Contains(r.stderr, "fsck --repair:") ||
		!strings.Contains(r.stderr, "for root only (uid 65534)") || !strings.Contains(r.stderr, "sudo strata fsck --repair") {
		t.Fatalf("fsck --repair as nobody = %+v", r)
	}
	if out := c.ok("fsck"); !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("fsck = %q", out)
	}
}

// runJobMain sends the jobs.Request on stdin to the daemon at addr, in
// namespace default, and prints the error: a client that asks what the
// CLI never would (TestClientModeNonRoot).
func runJobMain(addr string) int {
	var req jobs.Request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Println(err)
		return 2
	}
	conn, err := client.Dial(addr)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer conn.Close()
	_, err = client.RunJob(namespaces.WithNamespace(context.Background(), "default"), conn, req, jobs.Env{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}
