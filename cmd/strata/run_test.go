package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// Test-only default network, away from the host's strata0 and the
// network package's tests.
const (
	runBridge = "strt-run0"
	runSubnet = "10.253.91.0/24"
)

// runCLI is a CLI on a daemon with the tasks service and the busybox test
// image imported; when the test ends it removes every container left and
// checks that no container, task, snapshot, netns or mount is left.
func runCLI(t *testing.T) *cli {
	t.Helper()
	d := servertest.StartTasks(t)
	return runCLIOn(t, &cli{t: t, root: d.Store.Root, daemon: d})
}

func runCLIOn(t *testing.T, c *cli) *cli {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running containers needs root")
	}
	// Before the cleanups below, so the lock is released after them.
	testutil.LockHostNetwork(t)
	root := c.root
	c.env = []string{namespaces.EnvVar + "=strata-run", bridgeEnv + "=" + runBridge + "=" + runSubnet}
	c.ok("images", "import", testutil.BusyboxLayout(t))
	t.Cleanup(func() {
		// Whatever a failed test left, then the check that a passing one
		// left nothing.
		if ids := strings.Fields(c.run("ps", "-aq", "--no-trunc").stdout); len(ids) > 0 {
			t.Errorf("containers left: %v", ids)
			c.run(append([]string{"rm", "-f"}, ids...)...)
		}
		if c.daemon != nil {
			if got := c.run("tasks", "ls", "-q").stdout; got != "" {
				t.Errorf("tasks left: %q", got)
			}
		}
		if out, _ := exec.Command("pgrep", "-f", "containerd-shim.*"+root).Output(); len(out) > 0 {
			t.Errorf("shims left: %s", out)
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "network", "endpoints")); len(ents) > 0 {
			t.Errorf("network endpoints left: %v", ents)
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "network.run", "netns")); len(ents) > 0 {
			t.Errorf("network namespaces left: %v", ents)
		}
		if info, err := mount.Lookup(root); err == nil && info.Mountpoint != "/" && strings.HasPrefix(info.Mountpoint, root) {
			t.Errorf("mount left under the root: %s", info.Mountpoint)
		}
		if out, _ := exec.Command("sh", "-c", "grep -c "+root+" /proc/self/mountinfo").Output(); strings.TrimSpace(string(out)) != "0" {
			t.Errorf("%s mounts left under %s", strings.TrimSpace(string(out)), root)
		}
		if out, _ := exec.Command("ip", "-o", "link", "show", "master", runBridge).Output(); len(out) > 0 {
			t.Errorf("veths left on %s: %s", runBridge, out)
		}
		// The bridge and the plugins' chains stay for the next container,
		// as docker0 does; Cleanup removes them once nothing holds them.
		m, err := network.New(filepath.Join(root, "network"), filepath.Join(root, "network.run"),
			network.WithDefaultNetwork(runBridge, netip.MustParsePrefix(runSubnet)))
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := m.Cleanup(context.Background(), func(string, string) bool { return false }); err != nil {
			// The plugins' shared chains stay while other containers on
			// the host (other tests, other stores) use them.
			t.Logf("network cleanup: %v", err)
		}
		subnetPrefix := strings.TrimSuffix(runSubnet, "0/24")
		for _, table := range []string{"nat", "filter"} {
			out, err := exec.Command("iptables-save", "-t", table).Output()
			if err != nil {
				t.Errorf("iptables-save -t %s: %v", table, err)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, subnetPrefix) || strings.Contains(l, runBridge) {
					t.Errorf("iptables %s rule left: %s", table, l)
				}
			}
		}
		if err := exec.Command("ip", "link", "show", runBridge).Run(); err == nil {
			t.Errorf("bridge %s left", runBridge)
		}
	})
	return c
}

const busybox = testutil.BusyboxImageName

// TestRun: strata run in the foreground: output, exit status, --rm, the
// flags seen from inside, and the bad inputs, each one clear line with
// docker's status and nothing left behind.
func TestRun(t *testing.T) {
	c := runCLI(t)
	if r := c.run("run", "--rm", "--network", "none", busybox, "echo", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run --rm echo hi: %+v", r)
	}
	if r := c.run("run", "--rm", "--network", "none", busybox, "sh", "-c", "echo out; echo err >&2; exit 3"); r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("run exit 3: %+v", r)
	}
	if r := c.runIn(strings.NewReader("from stdin\n"), "run", "--rm", "-i", "--network", "none", busybox, "cat"); r.code != 0 || r.stdout != "from stdin\n" {
		t.Errorf("run -i cat: %+v", r)
	}
	// -t: the container's stdout is a terminal (hence \r\n).
	if r := c.run("run", "--rm", "-t", "--network", "none", busybox, "sh", "-c", "test -t 1 && echo tty"); r.code != 0 || r.stdout != "tty\r\n" {
		t.Errorf("run -t: %+v", r)
	}
	// Without --rm the container stays, exited, with its status.
	c.ok("run", "--name", "kept", "--network", "none", busybox, "true")
	if ps := c.ok("ps", "-a"); !strings.Contains(ps, "Exited (0)") || !strings.Contains(ps, "kept") {
		t.Errorf("ps -a after run without --rm:\n%s", ps)
	}
	if ps := c.ok("ps"); strings.Contains(ps, "kept") {
		t.Errorf("ps shows an exited container:\n%s", ps)
	}
	c.ok("rm", "kept")

	inside := []struct {
		name  string
		flags []string
		cmd   string
		want  string
	}{
		{"env user workdir", []string{"-e", "A=b", "-u", "1000:1000", "-w", "/tmp"}, "echo $A; id -u; id -g; pwd", "b\n1000\n1000\n/tmp\n"},
		{"read-only", []string{"--read-only"}, "touch /x 2>/dev/null && echo wrote || echo refused", "refused\n"},
		{"cap-drop ALL", []string{"--cap-drop", "ALL"}, "grep CapEff /proc/self/status", "CapEff:\t0000000000000000\n"},
		{"memory", []string{"--memory", "64m"}, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max", "67108864\n"},
		{"pids-limit", []string{"--pids-limit", "42"}, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max", "42\n"},
		{"entrypoint", []string{"--entrypoint", "echo"}, "", "\n"},
		{"hostname", []string{"--hostname", "box1"}, "hostname", "box1\n"},
	}
	for _, tc := range inside {
		args := append(append([]string{"run", "--rm", "--network", "none"}, tc.flags...), busybox)
		if tc.cmd != "" {
			args = append(args, "sh", "-c", tc.cmd)
		}
		if r := c.run(args...); r.code != 0 || r.stdout != tc.want {
			t.Errorf("%s: run %v: exit %d, stdout %q, stderr %q; want %q", tc.name, tc.flags, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	// -v: a bind mount, read-only with :ro.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("host data\n"), 0o644)
	if r := c.run("run", "--rm", "--network", "none", "-v", dir+":/data:ro", busybox, "sh", "-c", "cat /data/f; touch /data/g 2>/dev/null || echo ro"); r.code != 0 || r.stdout != "host data\nro\n" {
		t.Errorf("run -v %s:/data:ro: %+v", dir, r)
	}
	c.ok("run", "--rm", "--network", "none", "-v", dir+":/data", busybox, "sh", "-c", "echo new > /data/g")
	if b, _ := os.ReadFile(filepath.Join(dir, "g")); string(b) != "new\n" {
		t.Errorf("write through -v: host sees %q", b)
	}

	c.run("run", "-d", "--name", "taken", "--network", "none", busybox, "sleep", "1000")
	bad := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"image missing", []string{"run", "--pull", "never", "example.com/nosuch:1", "true"}, 125, `image "example.com/nosuch:1"`},
		{"name taken", []string{"run", "--name", "taken", "--network", "none", busybox, "true"}, 125, `container name "taken" is already in use`},
		{"bind source missing", []string{"run", "--rm", "--network", "none", "-v", "/nonexistent/src:/x", busybox, "true"}, 125, "/nonexistent/src"},
		{"unknown capability", []string{"run", "--rm", "--network", "none", "--cap-add", "CAP_BOGUS", busybox, "true"}, 125, "BOGUS"},
		{"network missing", []string{"run", "--rm", "--network", "nosuchnet", busybox, "true"}, 125, "nosuchnet"},
		{"command not found", []string{"run", "--rm", "--network", "none", busybox, "nosuchcmd"}, 127, "nosuchcmd"},
		{"unknown flag", []string{"run", "--bogus", busybox}, 125, "bogus"},
		{"unknown signal", []string{"kill", "-s", "SIGBOGUS", "taken"}, 2, "SIGBOGUS"},
		{"no such container", []string{"stop", "nosuch"}, 1, "no such container: nosuch"},
	}
	for _, tc := range bad {
		r := c.run(tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: %v: exit %d, stderr %q; want %d and %q", tc.name, tc.args, r.code, r.stderr, tc.code, tc.want)
		} else if tc.code != 1 && len(lines) != 1 {
			t.Errorf("%s: %v: stderr has %d lines, want one: %q", tc.name, tc.args, len(lines), r.stderr)
		}
	}
	c.ok("rm", "-f", "taken")
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left by the bad inputs: %q", ps)
	}
}

// TestRunLifecycle: run -d, ps, exec, stop (a process that traps SIGTERM
// and one that does not), kill, start again, rm -f, prune, inspect, and
// names and ID prefixes as docker resolves them.
func TestRunLifecycle(t *testing.T) {
	c := runCLI(t)
	id := strings.TrimSpace(c.ok("run", "-d", "--name", "sleeper", "--network", "none", busybox, "sleep", "1000"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-digit ID", id)
	}
	trap := strings.TrimSpace(c.ok("run", "-d", "--name", "trapper", "--network", "none", busybox,
		"sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"))
	ps := c.ok("ps")
	if !strings.HasPrefix(ps, "CONTAINER ID") || !strings.Contains(ps, id[:12]) || !strings.Contains(ps, "Up ") || !strings.Contains(ps, "sleeper") {
		t.Errorf("ps:\n%s", ps)
	}
	if r := c.run("exec", "-e", "X=y", "-w", "/etc", "sleeper", "sh", "-c", "echo $X; pwd; exit 4"); r.code != 4 || r.stdout != "y\n/etc\n" {
		t.Errorf("exec: %+v", r)
	}
	if r := c.runIn(strings.NewReader("to exec\n"), "exec", "-i", "sleeper", "cat"); r.code != 0 || r.stdout != "to exec\n" {
		t.Errorf("exec -i cat: %+v", r)
	}
	if r := c.run("exec", "-u", "1000", id[:8], "id", "-u"); r.code != 0 || r.stdout != "1000\n" {
		t.Errorf("exec -u 1000 by ID prefix: %+v", r)
	}
	// Names from the container's /etc/passwd (busybox has nobody, 65534).
	if r := c.run("exec", "-u", "nobody", "sleeper", "id", "-u"); r.code != 0 || r.stdout != "65534\n" {
		t.Errorf("exec -u nobody: %+v", r)
	}
	c.fails(1, "nosuchuser", "exec", "-u", "nosuchuser", "sleeper", "true")
	// sleep as PID 1 ignores SIGTERM: stop kills it after -t.
	c.ok("stop", "-t", "1", "sleeper")
	c.ok("stop", "trapper")
	ps = c.ok("ps", "-a")
	for _, want := range []string{"Exited (137)", "Exited (7)"} {
		if !strings.Contains(ps, want) {
			t.Errorf("ps -a lacks %q:\n%s", want, ps)
		}
	}
	// Start again: a new task on the same root filesystem.
	c.ok("start", "sleeper")
	if ps := c.ok("ps", "-q"); strings.TrimSpace(ps) != id[:12] {
		t.Errorf("ps -q after start = %q, want %s", ps, id[:12])
	}
	var ins []struct {
		ID, Name, State string
		Spec            struct{ Process struct{ Args []string } }
	}
	if err := json.Unmarshal([]byte(c.ok("inspect", "sleeper")), &ins); err != nil || len(ins) != 1 || ins[0].ID != id || ins[0].State != "running" || strings.Join(ins[0].Spec.Process.Args, " ") != "sleep 1000" {
		t.Errorf("inspect sleeper = %+v, %v", ins, err)
	}
	c.fails(1, "is running", "rm", "sleeper")
	c.ok("rm", "-f", "sleeper")
	// -d --rm: gone once it has exited, seen by the next command.
	c.ok("run", "-d", "--rm", "--network", "none", busybox, "true")
	eventually(t, "the -d --rm container removed", func() error {
		if ps := c.ok("ps", "-aq"); len(strings.Fields(ps)) != 1 {
			return fmt.Errorf("ps -aq = %q, want only the trapper", ps)
		}
		return nil
	})
	killed := strings.TrimSpace(c.ok("run", "-d", "--network", "none", busybox, "sleep", "1000"))
	c.ok("kill", killed[:5])
	if r := c.run("run", "--rm", "--network", "none", busybox, "true"); r.code != 0 {
		t.Errorf("run --rm true: %+v", r)
	}
	eventually(t, "the killed container", func() error {
		if ps := c.ok("ps", "-a", "--no-trunc"); !strings.Contains(ps, killed) || !strings.Contains(ps, "Exited (137)") {
			return fmt.Errorf("ps -a:\n%s", ps)
		}
		return nil
	})
	if got := strings.Fields(c.ok("container", "prune")); len(got) != 2 || !slices.Contains(got, trap) || !slices.Contains(got, killed) {
		t.Errorf("container prune printed %q, want %s and %s", got, trap, killed)
	}
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("ps -aq after rm and prune = %q", ps)
	}
}

// TestRunPublish: run -d -p 127.0.0.1:18080:80 … httpd, then a GET from
// the host answers; rm -f takes the port, veth and rules away.
func TestRunPublish(t *testing.T) {
	c := runCLI(t)
	c.ok("run", "-d", "--name", "web", "-p", "127.0.0.1:18080:80", busybox,
		"sh", "-c", "echo hello from strata > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
	if ps := c.ok("ps"); !strings.Contains(ps, "127.0.0.1:18080->80/tcp") {
		t.Errorf("ps lacks the published port:\n%s", ps)
	}
	var body string
	deadline := time.Now().Add(20 * time.Second) // httpd's start, not a timing assertion
	for {
		resp, err := http.Get("http://127.0.0.1:18080/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET 127.0.0.1:18080: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello from strata\n" {
		t.Errorf("GET 127.0.0.1:18080 = %q", body)
	}
	// The port is held: a second container cannot take it.
	if r := c.run("run", "--rm", "-p", "127.0.0.1:18080:80", busybox, "true"); r.code != 125 || !strings.Contains(r.stderr, "18080") {
		t.Errorf("second -p 18080: %+v", r)
	}
	c.ok("rm", "-f", "web")
	if _, err := http.Get("http://127.0.0.1:18080/"); err == nil {
		t.Errorf("127.0.0.1:18080 still answers after rm -f")
	}
}

// TestRunEmbedded: with no daemon, run, ps, stop and rm work on the store
// opened in the process (an in-process server); a detached container's
// shim outlives the command that started it and the next one finds it;
// a foreground run lets go of the store while its container runs.
func TestRunEmbedded(t *testing.T) {
	embeddedOnly(t, "the embedded in-process server is what is tested")
	c := runCLIOn(t, &cli{t: t, root: t.TempDir()})
	if r := c.run("run", "--rm", "--network", "none", busybox, "echo", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("embedded run --rm echo hi: %+v", r)
	}
	id := strings.TrimSpace(c.ok("run", "-d", "--name", "bg", "--network", "none", busybox, "sleep", "1000"))
	if ps := c.ok("ps", "-q", "--no-trunc"); strings.TrimSpace(ps) != id {
		t.Errorf("ps after run -d (a new process, the shim left running) = %q, want %s", ps, id)
	}
	// A foreground run waiting on a host FIFO: meanwhile another command
	// gets the store (bounded, so that a held lock fails the test rather
	// than hang it), then the FIFO lets the container end.
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fg := c.cmd(nil, "run", "--rm", "--network", "none", "-v", dir+":/d", busybox, "sh", "-c", "cat /d/fifo; exit 5")
	var out strings.Builder
	fg.Stdout = &out
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fg.Process.Kill(); fg.Wait() })
	eventually(t, "the foreground container running", func() error {
		r := c.run("--lock-timeout", "60s", "ps", "-q")
		if r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
			return fmt.Errorf("ps while a foreground run waits: %+v", r)
		}
		return nil
	})
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("through the fifo\n")
	w.Close()
	err = fg.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || out.String() != "through the fifo\n" {
		t.Errorf("foreground run: %v, stdout %q; want exit 5 and the FIFO's line", err, out.String())
	}
	// logs -f lets go of the store while it follows (ps meanwhile), and
	// ends once the container has exited.
	c.ok("run", "-d", "--name", "talker", "--network", "none", "-v", dir+":/d", busybox, "sh", "-c", "echo one; cat /d/fifo; echo two")
	follow := c.cmd(nil, "logs", "-f", "talker")
	var followed strings.Builder
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	c.ok("--lock-timeout", "60s", "ps", "-q")
	w, err = os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := follow.Wait(); err != nil || followed.String() != "one\ntwo\n" {
		t.Errorf("embedded logs -f talker: %v, stdout %q", err, followed.String())
	}
	c.ok("rm", "talker")
	c.ok("stop", "-t", "1", "bg")
	if ps := c.ok("ps", "-a"); !strings.Contains(ps, "Exited (137)") {
		t.Errorf("ps -a after stop:\n%s", ps)
	}
	c.ok("rm", "bg")
}

// eventually waits for check to pass: for a state to be reached (a
// container started, an exit seen), with a generous bound so that a
// broken one fails rather than hangs. Not a timing assertion.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunPull: --pull missing pulls through the pull job (its progress on
// stderr) and unpacks at create; --pull never and a failed pull name the
// image, exit 125 and leave nothing.
func TestRunPull(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	ref := testutil.PushBusybox(t, reg.Host, "lib/busybox", "1")
	c := runCLI(t)
	c.fails(125, ref, "run", "--rm", "--pull", "never", "--network", "none", ref, "true")
	r := c.run("run", "--rm", "--network", "none", ref, "echo", "pulled")
	if r.code != 0 || r.stdout != "pulled\n" {
		t.Fatalf("run --pull missing %s: %+v", ref, r)
	}
	if imgs := c.ok("images", "ls", "-q"); !strings.Contains(imgs, reg.Host+"/lib/busybox:1") {
		t.Errorf("images ls after run --pull missing:\n%s", imgs)
	}
	missing := reg.Host + "/lib/nosuch:1"
	if r := c.run("run", "--rm", "--network", "none", missing, "true"); r.code != 125 || !strings.Contains(r.stderr, "lib/nosuch") {
		t.Errorf("run %s (a failed pull): %+v", missing, r)
	}
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
}

// TestRunLogs: a detached container's output is kept: logs shows its
// stdout and stderr apart, logs -f ends once the container has exited
// (with what it wrote last), --tail, names and ID prefixes; rm takes the
// log directory away; a bad --log-opt is refused before anything exists.
func TestRunLogs(t *testing.T) {
	c := runCLI(t)
	id := strings.TrimSpace(c.ok("run", "-d", "--name", "w", "--network", "none", "--log-opt", "max-size=1m,max-file=2", busybox,
		"sh", "-c", "echo out; echo err >&2; sleep 1; echo late"))
	eventually(t, "the first lines in the log", func() error {
		if r := c.run("logs", "w"); r.code != 0 || !strings.HasPrefix(r.stdout, "out\n") || r.stderr != "err\n" {
			return fmt.Errorf("logs w: %+v", r)
		}
		return nil
	})
	if r := c.run("logs", "-f", id[:7]); r.code != 0 || r.stdout != "out\nlate\n" || r.stderr != "err\n" {
		t.Errorf("logs -f by ID prefix: %+v", r)
	}
	if got := c.ok("logs", "--tail", "1", "w"); got != "late\n" {
		t.Errorf("logs --tail 1 w = %q, want the last line", got)
	}
	dir := filepath.Join(c.root, "logs", "strata-run", id)
	if _, err := os.Stat(filepath.Join(dir, "json.log")); err != nil {
		t.Errorf("the container's log: %v", err)
	}
	c.fails(1, "no such container: nosuch", "logs", "nosuch")
	c.ok("rm", "w")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log directory after rm: %v, want it gone", err)
	}
	if r := c.run("run", "-d", "--network", "none", "--log-opt", "max-size=lots", busybox, "true"); r.code != 125 || !strings.Contains(r.stderr, "max-size=lots") {
		t.Errorf("run --log-opt max-size=lots: %+v", r)
	}
}

// TestRunUserNetwork: two containers on a user-defined network reach each
// other by name; network rm takes its bridge away once they are gone.
func TestRunUserNetwork(t *testing.T) {
	c := runCLI(t)
	netID := strings.TrimSpace(c.ok("network", "create", "--subnet", "10.253.92.0/24", "n1"))
	bridge := "st-" + netID[:12]
	t.Cleanup(func() {
		c.run("rm", "-f", "a", "b")
		c.run("network", "rm", "n1")
		if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
			t.Errorf("bridge %s of n1 left", bridge)
		}
		for _, table := range []string{"nat", "filter"} {
			out, _ := exec.Command("iptables-save", "-t", table).Output()
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "10.253.92.") || strings.Contains(l, bridge) {
					t.Errorf("iptables %s rule of n1 left: %s", table, l)
				}
			}
		}
	})
	c.ok("run", "-d", "--name", "a", "--network", "n1", busybox,
		"sh", "-c", "echo from a > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
	// httpd's start, waited for: not a timing assertion.
	eventually(t, "b fetching a's page by name", func() error {
		if r := c.run("run", "--rm", "--name", "b", "--network", "n1", busybox, "wget", "-q", "-O", "-", "http://a/"); r.code != 0 || r.stdout != "from a\n" {
			return fmt.Errorf("wget http://a/ from b: %+v", r)
		}
		return nil
	})
	if r := c.run("run", "--rm", "--name", "b", "--network", "n1", busybox, "ping", "-c1", "-W5", "a"); r.code != 0 || !strings.Contains(r.stdout, "10.253.92.") {
		t.Errorf("ping -c1 a from b: %+v", r)
	}
	c.ok("rm", "-f", "a")
	c.ok("network", "rm", "n1")
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("bridge %s still there after network rm", bridge)
	}
	// A network that does not exist: one line, 125, nothing created.
	r := c.run("run", "--name", "x", "--network", "n1", busybox, "true")
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); r.code != 125 || !strings.Contains(r.stderr, "n1") || len(lines) != 1 {
		t.Errorf("run --network n1 after network rm: %+v", r)
	}
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left by a missing network: %q", ps)
	}
}

// TestRunVolumes: -v NAME:/dst makes the volume on first use and keeps
// its data for the next container (read-only with :ro); a new volume at
// an image path starts with the image's files; volume rm refuses a
// volume a container holds, and works once the container is gone.
func TestRunVolumes(t *testing.T) {
	c := runCLI(t)
	t.Cleanup(func() {
		c.run("rm", "-f", "holder")
		c.run("volume", "rm", "data", "etcvol")
		if ents, _ := os.ReadDir(filepath.Join(c.root, "volumes")); len(ents) > 1 { // the lock file stays
			t.Errorf("volumes left: %v", ents)
		}
	})
	c.ok("run", "--rm", "--network", "none", "-v", "data:/data", busybox, "sh", "-c", "echo kept > /data/f")
	if r := c.run("run", "--rm", "--network", "none", "-v", "data:/data:ro", busybox,
		"sh", "-c", "cat /data/f; touch /data/g 2>/dev/null || echo ro"); r.code != 0 || r.stdout != "kept\nro\n" {
		t.Errorf("the next container on data:/data:ro: %+v", r)
	}
	if ls := c.ok("volume", "ls", "-q"); !strings.Contains(ls, "data") {
		t.Errorf("volume ls -q lacks data: %q", ls)
	}
	// busybox's /etc has passwd and group: a new volume there starts with them.
	if r := c.run("run", "--rm", "--network", "none", "-v", "etcvol:/etc", busybox, "sh", "-c", "grep ^root: /etc/passwd | cut -d: -f1; echo mine > /etc/mine"); r.code != 0 || r.stdout != "root\n" {
		t.Errorf("a new volume at /etc: %+v", r)
	}
	// Filled once only: the next container sees what the first left.
	if r := c.run("run", "--rm", "--network", "none", "-v", "etcvol:/etc", busybox, "cat", "/etc/mine"); r.code != 0 || r.stdout != "mine\n" {
		t.Errorf("etcvol in the next container: %+v", r)
	}
	id := strings.TrimSpace(c.ok("run", "-d", "--name", "holder", "--network", "none", "-v", "data:/data", busybox, "sleep", "1000"))
	c.fails(1, "volume \"data\" is in use by container(s) "+id[:12], "volume", "rm", "data")
	c.ok("stop", "-t", "1", "holder")
	// A stopped container still holds it, as docker's.
	c.fails(1, "in use", "volume", "rm", "data")
	c.ok("rm", "holder")
	c.ok("volume", "rm", "data", "etcvol")
	if r := c.run("run", "--rm", "--network", "none", "-v", "bad/name:/x", busybox, "true"); r.code != 125 {
		t.Errorf("run -v bad/name:/x: %+v", r)
	}
}

// TestRunStats: stats --no-stream of a container under --memory 64m shows
// its 64 MiB limit and at least one process, from the tasks service's
// cgroup metrics; a stopped container has none to show.
func TestRunStats(t *testing.T) {
	c := runCLI(t)
	c.ok("run", "-d", "--name", "st", "--memory", "64m", "--network", "none", busybox, "sleep", "1000")
	out := c.ok("stats", "--no-stream", "st")
	if !strings.HasPrefix(out, "CONTAINER ID") || !strings.Contains(out, "/ 64.0 MiB") || !strings.Contains(out, "st") {
		t.Errorf("stats --no-stream st:\n%s", out)
	}
	var rows []struct {
		Name     string
		MemLimit uint64
		PIDs     uint64
		CPUPerc  float64
	}
	if err := json.Unmarshal([]byte(c.ok("-o", "json", "stats", "--no-stream")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("stats -o json: %v, %+v", err, rows)
	}
	if r := rows[0]; r.Name != "st" || r.MemLimit != 64<<20 || r.PIDs < 1 || r.CPUPerc < 0 {
		t.Errorf("stats -o json = %+v, want st, a 64 MiB limit, ≥ 1 pid", r)
	}
	c.ok("stop", "-t", "1", "st")
	c.fails(1, "no stats", "stats", "--no-stream", "st")
	c.ok("rm", "st")
}
