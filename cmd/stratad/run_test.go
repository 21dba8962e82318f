package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/testutil"
	"golang.org/x/sys/unix"
)

// TestRunSurvivesDaemonKill: a container started with `strata run -d`
// through a real stratad keeps running when the daemon is SIGKILLed; the
// daemon started again on the same root and state lists it running (the
// same shim), `strata stop` stops it and reports its exit status, `rm`
// removes it, and no shim, mount, network namespace, veth or bridge is
// left.
func TestRunSurvivesDaemonKill(t *testing.T) {
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/usr/lib/cni/firewall"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: install Debian's containernetworking-plugins (scripts/deps.sh)", err)
		}
	}
	// First, so that it is released after every cleanup below.
	testutil.LockHostNetwork(t)
	strata := buildStrata(t)
	d := startTaskDaemon(t)
	bridge, subnet := d.cfg.Network.DefaultBridge, d.cfg.Network.DefaultSubnet
	root := d.cfg.Root
	// The CLI sets up the container's network on the daemon's root; it
	// must use the daemon's default bridge, which the daemon tears down
	// what exited containers held on.
	env := append(os.Environ(), namespaces.EnvVar+fmt.Sprintf("=run-%d", os.Getpid()), "STRATA_DEFAULT_BRIDGE="+bridge+"="+subnet)
	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(strata, append([]string{"--address", d.sock}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("strata %s: %v\n%s\nstratad log:\n%s", strings.Join(args, " "), err, out, d.log)
		}
		return out
	}
	// The bridge and the plugins' chains stay for the next container, as
	// docker0 does: removed here once nothing holds them, after the
	// container's removal below (cleanups run last first).
	m, err := network.New(filepath.Join(root, "network"), filepath.Join(root, "network.run"),
		network.WithDefaultNetwork(bridge, netip.MustParsePrefix(subnet)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Cleanup(context.Background(), func(string, string) bool { return false }) })
	t.Cleanup(func() { // when the test failed midway, while the daemon runs
		if d.cmd != nil {
			cli("rm", "-f", "s")
		}
	})

	ok("images", "import", testutil.BusyboxLayout(t))
	id := strings.TrimSpace(ok("run", "-d", "--name", "s", testutil.BusyboxImageName, "sleep", "600"))
	shims := d.shims()
	if len(shims) != 1 {
		t.Fatalf("shims after run -d: %v, want one", shims)
	}
	netnsDir := filepath.Join(root, "network.run", "netns")
	if ents, _ := os.ReadDir(netnsDir); len(ents) != 1 {
		t.Fatalf("network namespaces in %s after run -d: %v, want one", netnsDir, ents)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output(); len(strings.TrimSpace(string(out))) == 0 {
		t.Fatalf("no veth on %s after run -d", bridge)
	}
	// The CLI that set the endpoint up has exited; the container's init,
	// in the endpoint's namespace, holds it now, for any daemon's cleanup.
	ep, err := m.Endpoint(namespaces.WithNamespace(context.Background(), fmt.Sprintf("run-%d", os.Getpid())), id)
	if err != nil || ep.Holder == nil {
		t.Fatalf("endpoint of %s: %+v, %v; want one with a holder", id, ep, err)
	}
	var want unix.Stat_t
	if err := unix.Stat(ep.NetNS, &want); err != nil {
		t.Fatal(err)
	}
	if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", ep.Holder.PID)); link != fmt.Sprintf("net:[%d]", want.Ino) {
		t.Errorf("holder %d of %s's endpoint is in network namespace %q, want the endpoint's (inode %d): not the container's init", ep.Holder.PID, id, link, want.Ino)
	}

	d.kill()
	d.start()

	ps := ok("ps", "--no-trunc")
	var row string
	for _, l := range strings.Split(ps, "\n") {
		if strings.HasPrefix(l, id) {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) == 0 || f[len(f)-1] != "s" || !strings.Contains(row, "Up ") {
		t.Fatalf("ps after stratad was killed and started again:\n%s\nwant %s, named s, Up", ps, id)
	}
	if got := d.shims(); !slices.Equal(got, shims) {
		t.Errorf("shims after the restart: %v, want the same %v", got, shims)
	}
	// busybox sleep as pid 1 ignores SIGTERM: stop kills it after -t.
	ok("stop", "-t", "1", "s")
	if ps := ok("ps", "-a"); !strings.Contains(ps, "Exited (137)") {
		t.Errorf("ps -a after stop:\n%s\nwant Exited (137)", ps)
	}
	ok("rm", "s")
	if ps := ok("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("ps -aq after rm: %q", ps)
	}

	d.checkNothingLeft()
	if ents, _ := os.ReadDir(netnsDir); len(ents) > 0 {
		t.Errorf("network namespaces left in %s: %v", netnsDir, ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "network", "endpoints")); len(ents) > 0 {
		t.Errorf("network endpoints left: %v", ents)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output(); len(out) > 0 {
		t.Errorf("veths left on %s: %s", bridge, out)
	}
	if left, _ := mount.Under(d.dir); len(left) > 0 {
		t.Errorf("mounts left under %s: %v", d.dir, left)
	}
	if _, err := m.Cleanup(context.Background(), func(string, string) bool { return false }); err != nil {
		t.Logf("network cleanup: %v", err) // the plugins' shared chains stay while others use them
	}
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("bridge %s left", bridge)
	}
}
