package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/testutil"
)

// netFixture is a daemon with the network manager strata run would open
// on its root, and ctr to run tasks in the endpoints' namespaces.
type netFixture struct {
	t   *testing.T
	d   *taskDaemon
	m   *network.Manager
	ns  string
	ctr string
}

func newNetFixture(t *testing.T) *netFixture {
	t.Helper()
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/usr/lib/cni/firewall"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: install Debian's containernetworking-plugins (scripts/deps.sh)", err)
		}
	}
	testutil.LockHostNetwork(t)
	d := startTaskDaemon(t)
	subnet := netip.MustParsePrefix(d.cfg.Network.DefaultSubnet)
	m, err := network.New(filepath.Join(d.cfg.Root, "network"), filepath.Join(d.cfg.Root, "network.run"),
		network.WithDefaultNetwork(d.cfg.Network.DefaultBridge, subnet))
	if err != nil {
		t.Fatal(err)
	}
	// Last, after the tasks' cleanups: the bridge and what a failed
	// test left.
	t.Cleanup(func() { m.Cleanup(context.Background(), func(string, string) bool { return false }) })
	f := &netFixture{t: t, d: d, m: m, ns: fmt.Sprintf("net-%d", os.Getpid()), ctr: ctrClients[0].Bin(t)}
	f.ok("images", "import", testutil.BusyboxLayout(t))
	return f
}

func (f *netFixture) ok(args ...string) string {
	f.t.Helper()
	return f.okIn(f.ns, args...)
}

// okIn runs ctr in namespace ns.
func (f *netFixture) okIn(ns string, args ...string) string {
	f.t.Helper()
	out, err := runCtr(f.t, f.ctr, f.d.sock, ns, args...)
	if err != nil {
		f.t.Fatalf("ctr -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// nsCtx is the context of the fixture's namespace for the manager.
func (f *netFixture) nsCtx() context.Context {
	return namespaces.WithNamespace(context.Background(), f.ns)
}

// runInNetwork sets up id's endpoint and runs a sleeping task in its
// namespace, as strata run does (the task's init holds the endpoint); it
// returns the task's pid.
func (f *netFixture) runInNetwork(id string) (*network.Endpoint, int) {
	f.t.Helper()
	return f.runIn(f.ns, id)
}

// runIn is runInNetwork in namespace ns (images imported there).
func (f *netFixture) runIn(ns, id string) (*network.Endpoint, int) {
	f.t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	ep, err := f.m.Setup(ctx, id, network.Request{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { // when the test failed midway
		runCtr(f.t, f.ctr, f.d.sock, ns, "tasks", "kill", "-s", "SIGKILL", id)
		runCtr(f.t, f.ctr, f.d.sock, ns, "tasks", "delete", "-f", id)
		runCtr(f.t, f.ctr, f.d.sock, ns, "containers", "rm", id)
		f.m.Teardown(ctx, id)
	})
	f.okIn(ns, "run", "-d", "--with-ns", "network:"+ep.NetNS, testutil.BusyboxImageName, id, "sleep", "1000")
	resp, err := f.d.tasks.Get(f.d.ctx(ns), &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.m.Hold(ctx, id, int(resp.Process.Pid)); err != nil {
		f.t.Fatal(err)
	}
	// The task is in the endpoint's namespace, with its address.
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", resp.Process.Pid))
	var want unix.Stat_t
	if err := unix.Stat(ep.NetNS, &want); err != nil || link != fmt.Sprintf("net:[%d]", want.Ino) {
		f.t.Fatalf("task %s in network namespace %s, want %s (inode %d): %v", id, link, ep.NetNS, want.Ino, err)
	}
	return ep, int(resp.Process.Pid)
}

// gone waits until id's endpoint is torn down: its record, namespace and
// the bridge port of its veth gone, its address free.
func (f *netFixture) gone(id string, ep *network.Endpoint) {
	f.t.Helper()
	f.goneIn(f.ns, id, ep)
}

// goneIn is gone for a container of namespace ns.
func (f *netFixture) goneIn(ns, id string, ep *network.Endpoint) {
	f.t.Helper()
	for i := 0; ; i++ {
		_, err := f.m.Endpoint(namespaces.WithNamespace(context.Background(), ns), id)
		if errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if i > 600 { // a bound for a broken watch, not a timing assertion
			f.t.Fatalf("endpoint of %s still there: %v\n%s", id, err, f.d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Lstat(ep.NetNS); !os.IsNotExist(err) {
		f.t.Errorf("network namespace %s left: %v", ep.NetNS, err)
	}
	if _, err := os.Stat(filepath.Join(f.d.cfg.Root, "network", "ipam", "bridge", ep.IP.String())); !os.IsNotExist(err) {
		f.t.Errorf("address %s of %s still leased: %v", ep.IP, id, err)
	}
}

// ports lists the interfaces on the daemon's default bridge.
func (f *netFixture) ports() []string {
	ents, _ := os.ReadDir(filepath.Join("/sys/class/net", f.d.cfg.Network.DefaultBridge, "brif"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func (f *netFixture) finish() {
	f.t.Helper()
	if _, err := f.m.Cleanup(context.Background(), func(string, string) bool { return false }); err != nil {
		f.t.Errorf("Cleanup: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", f.d.cfg.Network.DefaultBridge)); !os.IsNotExist(err) {
		f.t.Errorf("bridge %s left: %v", f.d.cfg.Network.DefaultBridge, err)
	}
	f.d.checkNothingLeft()
}

// TestNetworkTeardownOnExit: when a task whose container holds a network
// endpoint exits by itself, stratad tears the endpoint down; an exec's
// exit does not.
func TestNetworkTeardownOnExit(t *testing.T) {
	f := newNetFixture(t)
	ep, _ := f.runInNetwork("exits")
	if len(f.ports()) != 1 {
		t.Fatalf("bridge ports %v, want the container's veth", f.ports())
	}
	f.ok("tasks", "exec", "--exec-id", "e1", "exits", "true")
	if _, err := f.m.Endpoint(f.nsCtx(), "exits"); err != nil {
		t.Fatalf("after an exec's exit: %v, want the endpoint kept", err)
	}
	f.ok("tasks", "kill", "-s", "SIGKILL", "exits")
	f.gone("exits", ep)
	if p := f.ports(); len(p) != 0 {
		t.Errorf("bridge ports %v left", p)
	}
	f.ok("tasks", "delete", "exits")
	f.ok("containers", "rm", "exits")
	f.finish()
}

// TestNetworkTeardownOnExitSameID: a container "twin" in each of two
// namespaces; the exit of one's task tears down its endpoint only: the
// other keeps its veth, namespace, address and connectivity.
func TestNetworkTeardownOnExitSameID(t *testing.T) {
	f := newNetFixture(t)
	other := f.ns + "-b"
	f.okIn(other, "images", "import", testutil.BusyboxLayout(t))
	epA, _ := f.runIn(f.ns, "twin")
	epB, _ := f.runIn(other, "twin")
	if epA.IP == epB.IP || epA.NetNS == epB.NetNS {
		t.Fatalf("the twins share an address or namespace: %+v, %+v", epA, epB)
	}
	if p := f.ports(); len(p) != 2 {
		t.Fatalf("bridge ports %v, want the twins' two veths", p)
	}
	f.ok("tasks", "kill", "-s", "SIGKILL", "twin")
	f.gone("twin", epA)
	ctxB := namespaces.WithNamespace(context.Background(), other)
	if ep, err := f.m.Endpoint(ctxB, "twin"); err != nil || ep.IP != epB.IP {
		t.Fatalf("%s's twin after the other's exit: %+v, %v; want its endpoint kept", other, ep, err)
	}
	if p := f.ports(); len(p) != 1 {
		t.Errorf("bridge ports %v after one twin's exit, want the other's veth", p)
	}
	if _, err := os.Stat(filepath.Join(f.d.cfg.Root, "network", "ipam", "bridge", epB.IP.String())); err != nil {
		t.Errorf("address %s of %s's twin: %v, want leased", epB.IP, other, err)
	}
	if out := f.okIn(other, "tasks", "exec", "--exec-id", "ping", "twin", "ping", "-c", "1", epB.Gateway.String()); !strings.Contains(out, "1 packets received") {
		t.Errorf("%s's twin cannot reach its gateway:\n%s", other, out)
	}
	f.okIn(other, "tasks", "kill", "-s", "SIGKILL", "twin")
	f.goneIn(other, "twin", epB)
	for _, ns := range []string{f.ns, other} {
		f.okIn(ns, "tasks", "delete", "twin")
		f.okIn(ns, "containers", "rm", "twin")
	}
	f.finish()
}

// TestNetworkCleanupAtStart: stratad SIGKILLed; meanwhile a container's
// task dies, and an endpoint is left without any task by a process that
// died between its setup and the task create. The restarted daemon tears
// both down, and keeps the endpoint of the container still running and
// the one a live process is setting up.
func TestNetworkCleanupAtStart(t *testing.T) {
	f := newNetFixture(t)
	deadEP, deadPid := f.runInNetwork("dies")
	aliveEP, _ := f.runInNetwork("lives")
	orphan, err := f.m.Setup(f.nsCtx(), "orphan", network.Request{})
	if err != nil {
		t.Fatal(err)
	}
	// Its holder: a process that dies before it creates the task.
	cli := exec.Command("sleep", "1000")
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Hold(f.nsCtx(), "orphan", cli.Process.Pid); err != nil {
		t.Fatal(err)
	}
	cli.Process.Kill()
	cli.Wait()
	// Held by this test's process, alive: a CLI about to create the task.
	starting, err := f.m.Setup(f.nsCtx(), "starting", network.Request{})
	if err != nil {
		t.Fatal(err)
	}
	f.d.kill()
	// The task this test started dies with no daemon to see it.
	if err := unix.Kill(deadPid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; unix.Kill(deadPid, 0) == nil; i++ {
		if _, err := os.Stat("/proc/" + strconv.Itoa(deadPid)); err != nil || i > 600 {
			break
		}
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(deadPid) + "/stat"); strings.Contains(string(b), ") Z ") {
			break // a zombie until the shim reaps it
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.d.start()
	f.gone("orphan", orphan)
	f.gone("dies", deadEP)
	if ep, err := f.m.Endpoint(f.nsCtx(), "lives"); err != nil || ep.IP != aliveEP.IP {
		t.Errorf("endpoint of the running container: %+v, %v; want it kept", ep, err)
	}
	if ep, err := f.m.Endpoint(f.nsCtx(), "starting"); err != nil || ep.IP != starting.IP {
		t.Errorf("endpoint of the container being started: %+v, %v; want it kept", ep, err)
	}
	if err := f.m.Teardown(f.nsCtx(), "starting"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(aliveEP.NetNS); err != nil {
		t.Errorf("running container's namespace: %v", err)
	}
	f.ok("tasks", "kill", "-s", "SIGKILL", "lives")
	f.gone("lives", aliveEP)
	for _, id := range []string{"dies", "lives"} {
		f.ok("tasks", "delete", id)
		f.ok("containers", "rm", id)
	}
	f.finish()
}
