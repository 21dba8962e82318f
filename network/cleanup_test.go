package network

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const childEnv = "STRATA_NETWORK_TEST_CHILD"

// TestCrashChild is the process TestCleanupAfterCrash starts: it sets up a
// container's network and exits without tearing it down, as a daemon that
// dies does. Run on its own it has nothing to do.
func TestCrashChild(t *testing.T) {
	args := os.Getenv(childEnv)
	if args == "" {
		t.Skip("helper process of TestCleanupAfterCrash, which runs it with " + childEnv + " set")
	}
	f := strings.Split(args, "|") // root|state|bridge|subnet|id|hostPort[|hold]
	m, err := New(f[0], f[1], WithDefaultNetwork(f[2], netip.MustParsePrefix(f[3])))
	if err != nil {
		t.Fatal(err)
	}
	var req Request
	if f[5] != "" {
		port, err := ParsePort(f[5] + ":80")
		if err != nil {
			t.Fatal(err)
		}
		req.Ports = []PortMapping{port}
	}
	if _, err := m.Setup(testCtx, f[4], req); err != nil {
		t.Fatal(err)
	}
	if len(f) > 6 && f[6] == "hold" {
		// A CLI between Setup and its task create: alive, holding the
		// endpoint, until its parent kills it.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
	}
}

// TestCleanupAfterCrash: a new manager on the same directories tears down
// what a dead process left — a container fully set up (veth, address, port
// rules, namespace), one whose setup died right after its record, a
// namespace without a record and an address lease without a container —
// and leaves the live container alone.
func TestCleanupAfterCrash(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	live, err := m.Setup(ctx, "c-live", Request{})
	if err != nil {
		t.Fatal(err)
	}

	port, err := freePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{
		m.root, m.state, m.opts.defaultBridge, m.opts.defaultSubnet.String(), "c-dead", fmt.Sprint(port)}, "|"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	dead, err := m.Endpoint(ctx, "c-dead")
	if err != nil {
		t.Fatalf("the child left no endpoint: %v", err)
	}
	if !isNetNS(dead.NetNS) || !dead.Ready {
		t.Fatalf("the child's endpoint %+v: want a ready one with its namespace", dead)
	}
	rules, _ := exec.Command("iptables-save", "-t", "nat").Output()
	if !strings.Contains(string(rules), fmt.Sprintf("--dport %d", port)) {
		t.Fatalf("no DNAT rule for the child's port %d:\n%s", port, rules)
	}

	// A setup that died right after writing its record.
	half := &Endpoint{ContainerID: "c-half", Network: Default, NetNS: filepath.Join(m.state, "netns", "c-half"), Hostname: "c-half"}
	if half.Conf, err = m.defaultNet.marshal(m.ipamDir()); err != nil {
		t.Fatal(err)
	}
	if err := m.writeEndpoint(half); err != nil {
		t.Fatal(err)
	}
	// A namespace and files without a record, and a lease of no container.
	stray := filepath.Join(m.state, "netns", "c-stray")
	if err := newNetNS(stray); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(m.state, "containers", "c-stray"), 0o755); err != nil {
		t.Fatal(err)
	}
	ghost := filepath.Join(m.ipamDir(), Default, "10.250.99.99")
	if err := os.WriteFile(ghost, []byte("c-ghost\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	liveLease := filepath.Join(m.ipamDir(), Default, live.IP.String())
	if _, err := os.Stat(liveLease); err != nil {
		t.Fatalf("the live container's lease: %v", err)
	}

	restarted, err := New(m.root, m.state, WithDefaultNetwork(m.opts.defaultBridge, m.opts.defaultSubnet), WithResolvConf(m.opts.resolvConf))
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	removed, err := restarted.Cleanup(ctx, func(ns, id string) bool {
		asked = append(asked, ns+"/"+id)
		return id == "c-live"
	})
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	// c-live's holder (this process) runs: no need to ask. c-half's record
	// has the old layout's shape: no namespace.
	slices.Sort(asked)
	if strings.Join(asked, ",") != "/c-half,nt/c-dead" {
		t.Errorf("Cleanup asked live(%q), want /c-half and nt/c-dead", asked)
	}
	slices.Sort(removed)
	if strings.Join(removed, ",") != "c-half,nt/c-dead" {
		t.Errorf("Cleanup removed %q, want c-dead and c-half", removed)
	}
	for _, p := range []string{dead.NetNS, stray, filepath.Join(m.state, "containers", "c-stray"), filepath.Join(m.state, "containers", "c-dead"), ghost} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after Cleanup: %v, want removed", p, err)
		}
	}
	rules, _ = exec.Command("iptables-save", "-t", "nat").Output()
	if strings.Contains(string(rules), fmt.Sprintf("--dport %d", port)) {
		t.Errorf("the dead container's DNAT rule for %d is left:\n%s", port, rules)
	}
	if _, err := os.Stat(liveLease); err != nil {
		t.Errorf("the live container's lease after Cleanup: %v", err)
	}
	if out, err := inNetNS(live, "busybox", "ping", "-c", "1", live.Gateway.String()); err != nil {
		t.Errorf("the live container cannot reach its gateway after Cleanup: %v\n%s", err, out)
	}
	if err := restarted.Teardown(ctx, "c-live"); err != nil {
		t.Fatal(err)
	}
}

// TestNoneAndHost: --network none is a namespace with a loopback interface
// only; --network host has no namespace and the host's hosts and resolver.
func TestNoneAndHost(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	none, err := m.Setup(ctx, "c-none", Request{Network: None, Hostname: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "--net="+none.NetNS, "ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "lo: <LOOPBACK,UP,LOWER_UP>") {
		t.Errorf("links in the none namespace: %v\n%s", err, out)
	}
	if none.IP.IsValid() {
		t.Errorf("none has address %s", none.IP)
	}
	if h, _ := os.ReadFile(none.HostsPath); !strings.Contains(string(h), "127.0.1.1\tquiet\n") {
		t.Errorf("none's hosts:\n%s", h)
	}

	host, err := m.Setup(ctx, "c-host", Request{Network: Host})
	if err != nil {
		t.Fatal(err)
	}
	if host.NetNS != "" {
		t.Errorf("host network endpoint has a namespace %s", host.NetNS)
	}
	want, _ := os.ReadFile("/etc/hosts")
	if h, _ := os.ReadFile(host.HostsPath); string(h) != string(want) {
		t.Errorf("host's hosts file:\n%s\nwant the host's:\n%s", h, want)
	}
	if r, _ := os.ReadFile(host.ResolvConfPath); !strings.Contains(string(r), "nameserver 127.0.0.53\n") {
		t.Errorf("host network resolv.conf drops the loopback nameserver:\n%s", r)
	}
	if _, err := m.Setup(ctx, "c-host2", Request{Network: Host, Ports: []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}}); err == nil {
		t.Error("ports on the host network were accepted")
	}
	for _, req := range []Request{
		{Network: None, Name: "evil\n1.2.3.4 bank"},
		{Network: None, Hostname: "two words"},
		{Network: None, Hostname: "-dash"},
		{Network: None, DNSSearch: []string{"a b"}},
	} {
		if _, err := m.Setup(ctx, "c-bad", req); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Setup(%+v) = %v, want InvalidArgument", req, err)
		}
	}
	if _, err := m.Setup(ctx, "../escape", Request{Network: None}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Setup(../escape) = %v, want InvalidArgument", err)
	}
	for _, id := range []string{"c-none", "c-host"} {
		if err := m.Teardown(ctx, id); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(none.NetNS); !os.IsNotExist(err) {
		t.Errorf("none's namespace after Teardown: %v", err)
	}
}

// TestCleanupKeepsABridgeInUse: a bridge with a port stays when another
// manager (another root, as a second daemon or a test's store has) cleans
// up with no endpoint of its own on it: the port is a container of the
// first manager's, which must keep its network.
func TestCleanupKeepsABridgeInUse(t *testing.T) {
	a := newTestManager(t)
	ctx := testCtx
	ep, err := a.Setup(ctx, "c-a", Request{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.TempDir(), t.TempDir(), WithDefaultNetwork(a.opts.defaultBridge, a.opts.defaultSubnet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cleanup(ctx, func(string, string) bool { return false }); err != nil {
		t.Fatalf("Cleanup of the second manager: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", a.opts.defaultBridge)); err != nil {
		t.Fatalf("the bridge of a container another manager runs was deleted: %v", err)
	}
	if out, err := inNetNS(ep, "ip", "route"); err != nil || !strings.Contains(out, "default") {
		t.Fatalf("the container lost its network: %v\n%s", err, out)
	}
}

// TestSetupKeepsTheProcessNamespace: making containers' namespaces leaves
// every thread of this process in the namespace it had. Before, a thread
// that made one stayed in it, locked, to end with its goroutine — but Go
// never ends the main thread: when the goroutine ran there, the process's
// /proc/<pid>/ns/net named a container's namespace from then on (seen as
// ctr --net-host "not in the host's namespace" in cmd/stratad's tests).
// Now the thread goes back and is unlocked; this checks no thread, reused
// or not, is left in another namespace.
func TestSetupKeepsTheProcessNamespace(t *testing.T) {
	m := newTestManager(t)
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := newNetNS(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeNetNS(p) })
	}
	if _, err := m.Setup(testCtx, "c-ns", Request{}); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err == nil && ns != before {
			t.Errorf("thread %s is in network namespace %s, the process was in %s", task.Name(), ns, before)
		}
	}
}
