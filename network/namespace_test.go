package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/namespaces"
)

// bridgePorts lists the interfaces attached to a bridge.
func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func natRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	return string(out)
}

// TestSameIDInTwoNamespaces: container IDs are unique in a namespace, not
// on the host. Two containers "c-same" in two namespaces each get their
// own network; tearing one down (twice, as stop then rm do) leaves the
// other's veth, namespace, address, port rules and connectivity intact.
func TestSameIDInTwoNamespaces(t *testing.T) {
	m := newTestManager(t)
	ctxA := namespaces.WithNamespace(context.Background(), "team-a")
	ctxB := namespaces.WithNamespace(context.Background(), "team-b")
	portA, err := freePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Setup(ctxA, "c-same", Request{Ports: []PortMapping{{HostPort: portA, ContainerPort: 80, Protocol: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	portB, err := freePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Setup(ctxB, "c-same", Request{Ports: []PortMapping{{HostPort: portB, ContainerPort: 80, Protocol: "tcp"}}})
	if err != nil {
		t.Fatalf("Setup of the same ID in another namespace: %v", err)
	}
	if a.IP == b.IP || a.NetNS == b.NetNS || a.HostsPath == b.HostsPath {
		t.Fatalf("the two endpoints share an address, namespace or files: %+v and %+v", a, b)
	}
	if _, err := m.Setup(ctxB, "c-same", Request{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Setup in the same namespace = %v, want AlreadyExists", err)
	}
	// The layout of doc.go: everything named after the key.
	k := "team-a--c-same"
	for _, p := range []string{filepath.Join(m.root, "endpoints", k+".json"), filepath.Join(m.state, "netns", k), filepath.Join(m.state, "containers", k, "hosts")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("team-a's endpoint: %v", err)
		}
	}
	if lease, err := os.ReadFile(filepath.Join(m.ipamDir(), Default, a.IP.String())); err != nil || !strings.HasPrefix(string(lease), k+"\n") && !strings.HasPrefix(string(lease), k+"\r\n") {
		t.Errorf("team-a's lease = %q, %v; want it held by %s", lease, err, k)
	}
	veths := bridgePorts(t, m.opts.defaultBridge)
	if len(veths) != 2 {
		t.Fatalf("bridge ports %v, want a veth for each container", veths)
	}
	if rules := natRules(t); !strings.Contains(rules, fmt.Sprintf("--dport %d ", portA)) || !strings.Contains(rules, fmt.Sprintf("--dport %d ", portB)) {
		t.Fatalf("no DNAT rules for ports %d and %d:\n%s", portA, portB, rules)
	}
	for _, ctx := range []context.Context{ctxA, ctxA} { // stop, then rm
		if err := m.Teardown(ctx, "c-same"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Endpoint(ctxA, "c-same"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("team-a's endpoint after Teardown: %v, want NotFound", err)
	}
	got, err := m.Endpoint(ctxB, "c-same")
	if err != nil || got.IP != b.IP || got.Namespace != "team-b" {
		t.Fatalf("team-b's endpoint after team-a's Teardown: %+v, %v", got, err)
	}
	if left := bridgePorts(t, m.opts.defaultBridge); len(left) != 1 || !slices.Contains(veths, left[0]) {
		t.Errorf("bridge ports %v after team-a's Teardown, want one of %v", left, veths)
	}
	if !isNetNS(b.NetNS) || isNetNS(a.NetNS) {
		t.Errorf("namespaces after team-a's Teardown: team-b's %s mounted %v (want true), team-a's %s %v (want false)", b.NetNS, isNetNS(b.NetNS), a.NetNS, isNetNS(a.NetNS))
	}
	if _, err := os.Stat(b.HostsPath); err != nil {
		t.Errorf("team-b's hosts file: %v", err)
	}
	for ip, want := range map[string]bool{a.IP.String(): false, b.IP.String(): true} {
		_, err := os.Stat(filepath.Join(m.ipamDir(), Default, ip))
		if (err == nil) != want {
			t.Errorf("lease of %s: %v, want held %v", ip, err, want)
		}
	}
	rules := natRules(t)
	if strings.Contains(rules, fmt.Sprintf("--dport %d ", portA)) || !strings.Contains(rules, fmt.Sprintf("--dport %d ", portB)) {
		t.Errorf("after team-a's Teardown, want only port %d's DNAT rule, not %d's:\n%s", portB, portA, rules)
	}
	if out, err := inNetNS(b, "busybox", "ping", "-c", "1", b.Gateway.String()); err != nil {
		t.Errorf("team-b's container cannot reach its gateway: %v\n%s", err, out)
	}
	if ids, err := m.Containers(ctxB, Default); err != nil || !slices.Equal(ids, []string{"c-same"}) {
		t.Errorf("Containers(team-b) = %v, %v", ids, err)
	}
	if ids, err := m.Containers(ctxA, Default); err != nil || len(ids) != 0 {
		t.Errorf("Containers(team-a) = %v, %v, want none", ids, err)
	}
	if err := m.Teardown(ctxB, "c-same"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(context.Background(), "c-none", Request{Network: None}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Setup without a namespace = %v, want FailedPrecondition", err)
	}
}

// TestOldLayoutRecord: an endpoint recorded before records named their
// namespace (endpoints/<id>.json, netns/<id>, containers/<id>/) is still
// found by its ID and torn down, with everything it made.
func TestOldLayoutRecord(t *testing.T) {
	m := newTestManager(t)
	ep := &Endpoint{ContainerID: "c-old", Network: None, Hostname: "c-old", NetNS: filepath.Join(m.state, "netns", "c-old"),
		HostsPath: filepath.Join(m.state, "containers", "c-old", "hosts"), Ready: true}
	if err := newNetNS(ep.NetNS); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(ep.HostsPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ep.HostsPath, []byte(hostsHeader), 0o644); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf(`{"containerID": "c-old", "network": %q, "hostname": "c-old", "netns": %q, "hostsPath": %q, "ready": true}`,
		ep.Network, ep.NetNS, ep.HostsPath)
	if err := os.WriteFile(filepath.Join(m.root, "endpoints", "c-old.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := m.Endpoint(testCtx, "c-old")
	if err != nil || got.NetNS != ep.NetNS || got.Namespace != "" {
		t.Fatalf("Endpoint(c-old) of the old layout = %+v, %v", got, err)
	}
	// Cleanup keeps it while a container of that ID runs somewhere.
	if removed, err := m.Cleanup(testCtx, func(ns, id string) bool { return ns == "" && id == "c-old" }); err != nil || len(removed) > 0 {
		t.Fatalf("Cleanup with c-old live = %v, %v", removed, err)
	}
	if !isNetNS(ep.NetNS) {
		t.Fatalf("Cleanup removed the namespace %s of a live old-layout endpoint", ep.NetNS)
	}
	if err := m.Teardown(testCtx, "c-old"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ep.NetNS, filepath.Dir(ep.HostsPath), filepath.Join(m.root, "endpoints", "c-old.json")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after Teardown: %v, want removed", p, err)
		}
	}
}

// TestHolder: a holder is alive while its process runs; a start time or
// boot that differs (the PID reused, a reboot), a zombie and a reaped
// process are not.
func TestHolder(t *testing.T) {
	self, err := processHolder(os.Getpid())
	if err != nil || !self.alive() {
		t.Fatalf("processHolder(self) = %+v, %v; want alive", self, err)
	}
	reused := *self
	reused.StartTime++
	rebooted := *self
	rebooted.BootID = "00000000-0000-0000-0000-000000000000"
	for name, h := range map[string]*Holder{"reused PID": &reused, "other boot": &rebooted, "nil": nil} {
		if h.alive() {
			t.Errorf("%s: alive, want dead", name)
		}
	}
	child := exec.Command("sleep", "1000")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	h, err := processHolder(child.Process.Pid)
	if err != nil || !h.alive() {
		t.Fatalf("processHolder(child) = %+v, %v; want alive", h, err)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie until Wait.
	for {
		_, zombie, err := procStart(child.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if zombie {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10_000_000}, nil)
	}
	if h.alive() {
		t.Error("a zombie holder is alive, want dead")
	}
	if _, err := processHolder(child.Process.Pid); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("processHolder(zombie) = %v, want NotFound", err)
	}
	child.Wait()
	if h.alive() {
		t.Error("a reaped holder is alive, want dead")
	}
}

// TestCleanupKeepsHeldEndpoints: a daemon's cleanup that runs between a
// CLI's Setup and its task create leaves the endpoint alone, though no task
// runs for it; once that process is dead, the next cleanup removes it. An
// endpoint handed to the task's init (Hold) stays while the init runs,
// and goes after, though the process that set it up still runs.
func TestCleanupKeepsHeldEndpoints(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	cli := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cli.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{
		m.root, m.state, m.opts.defaultBridge, m.opts.defaultSubnet.String(), "c-starting", "", "hold"}, "|"))
	stdin, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cli.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cli.Stderr = os.Stderr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cli.Process.Kill(); cli.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	starting, err := m.Endpoint(ctx, "c-starting")
	if err != nil {
		t.Fatal(err)
	}
	if starting.Holder == nil || starting.Holder.PID != cli.Process.Pid {
		t.Fatalf("holder %+v, want the child %d", starting.Holder, cli.Process.Pid)
	}

	task, err := m.Setup(ctx, "c-task", Request{})
	if err != nil {
		t.Fatal(err)
	}
	initProc := exec.Command("sleep", "1000")
	if err := initProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { initProc.Process.Kill(); initProc.Wait() })
	if err := m.Hold(ctx, "c-task", initProc.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Hold(ctx, "c-nosuch", initProc.Process.Pid); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Hold(c-nosuch) = %v, want NotFound", err)
	}

	noTasks := func(string, string) bool { return false }
	if removed, err := m.Cleanup(ctx, noTasks); err != nil || len(removed) > 0 {
		t.Fatalf("Cleanup with both holders alive = %v, %v; want nothing removed", removed, err)
	}
	for _, ep := range []*Endpoint{starting, task} {
		if !isNetNS(ep.NetNS) {
			t.Errorf("namespace %s of held %s removed", ep.NetNS, ep)
		}
		if out, err := inNetNS(ep, "busybox", "ping", "-c", "1", ep.Gateway.String()); err != nil {
			t.Errorf("held %s lost its network: %v\n%s", ep, err, out)
		}
	}

	// The CLI dies before it creates the task; the init exits.
	stdin.Close()
	cli.Process.Kill()
	cli.Wait()
	initProc.Process.Kill()
	initProc.Wait()
	removed, err := m.Cleanup(ctx, noTasks)
	slices.Sort(removed)
	if err != nil || strings.Join(removed, ",") != "nt/c-starting,nt/c-task" {
		t.Fatalf("Cleanup after the holders died = %v, %v; want nt/c-starting and nt/c-task removed", removed, err)
	}
	for _, ep := range []*Endpoint{starting, task} {
		if _, err := os.Lstat(ep.NetNS); !os.IsNotExist(err) {
			t.Errorf("namespace %s of %s: %v, want removed", ep.NetNS, ep, err)
		}
		if _, err := os.Stat(filepath.Join(m.ipamDir(), Default, ep.IP.String())); !os.IsNotExist(err) {
			t.Errorf("lease of %s: %v, want released", ep, err)
		}
	}
}

// TestKey: a container's key is one to one with its namespace and ID,
// where joining them with a single separator is not ("a-b"+"c" and
// "a"+"b-c"), and the namespace comes back as what precedes the first
// "--".
func TestKey(t *testing.T) {
	refs := [][2]string{{"a-b", "c"}, {"a", "b-c"}, {"a", "b--c"}, {"a.b", "c"}, {"a", "b.c"}, {"a_b", "c"}, {"a", "b_c"}, {"default", "web"}}
	seen := map[string][2]string{}
	for _, r := range refs {
		if err := namespaces.Validate(r[0]); err != nil {
			t.Fatal(err)
		}
		k := key(r[0], r[1])
		if prev, ok := seen[k]; ok {
			t.Errorf("key(%q, %q) = key(%q, %q) = %q", r[0], r[1], prev[0], prev[1], k)
		}
		seen[k] = r
		if ns, id, _ := strings.Cut(k, "--"); ns != r[0] || id != r[1] {
			t.Errorf("key(%q, %q) = %q splits into %q, %q", r[0], r[1], k, ns, id)
		}
		if !idRE.MatchString(k) && len(k) <= 128 {
			t.Errorf("key(%q, %q) = %q: not a CNI container ID", r[0], r[1], k)
		}
	}
}

// TestTeardownExited: the exit of a container's previous task, handled
// after the container was started again, leaves the new endpoint (held by
// a process that runs) alone; the exit of its holder tears it down.
func TestTeardownExited(t *testing.T) {
	m := newTestManager(t)
	ep, err := m.Setup(testCtx, "c-again", Request{Network: None})
	if err != nil {
		t.Fatal(err)
	}
	old := exec.Command("true")
	if err := old.Run(); err != nil {
		t.Fatal(err)
	}
	if err := m.TeardownExited(testCtx, "c-again", old.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Endpoint(testCtx, "c-again"); err != nil || !isNetNS(ep.NetNS) {
		t.Fatalf("after an old task's exit: %v (namespace mounted %v), want the endpoint kept", err, isNetNS(ep.NetNS))
	}
	if err := m.TeardownExited(testCtx, "c-again", os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Endpoint(testCtx, "c-again"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("after its holder's exit: %v, want NotFound", err)
	}
	if err := m.TeardownExited(testCtx, "c-again", os.Getpid()); err != nil {
		t.Errorf("second TeardownExited = %v, want nil", err)
	}
}
