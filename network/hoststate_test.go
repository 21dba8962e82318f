package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

// testCtx is the namespace the tests' containers are in.
var testCtx = namespaces.WithNamespace(context.Background(), "nt")

// hostState is what these tests' networking may leave on the host: links,
// iptables rules, network namespace mounts, CNI's result cache — only what
// they can have made (ours), so that another runtime on the host (podman,
// docker, a stratad) changing its own networks meanwhile fails nothing.
type hostState struct {
	links    []string
	iptables []string
	nsMounts []string
	cache    []string
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// ourSubnets are the address ranges the tests' networks use (10.250-253.x,
// newTestManager and the store tests); ourLink names their bridges (the
// default "stt<pid>-<n>", user networks "st-<id>") and veths on them.
var ourSubnets = regexp.MustCompile(`\b10\.25[0-3]\.`)

func ourLink(name string, master string) bool {
	return strings.HasPrefix(name, "stt") || strings.HasPrefix(name, "st-") ||
		strings.HasPrefix(master, "stt") || strings.HasPrefix(master, "st-")
}

func captureHostState(t testing.TB) hostState {
	t.Helper()
	var s hostState
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	byIndex := map[int]string{}
	for _, i := range ifaces {
		byIndex[i.Index] = i.Name
	}
	for _, i := range ifaces {
		master := ""
		if b, err := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master")); err == nil {
			master = filepath.Base(b)
		}
		if ourLink(i.Name, master) {
			s.links = append(s.links, i.Name)
		}
	}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	// Rules naming our subnets or bridges, and the chains they jump to
	// (a container's CNI-<hash> chains); the plugins' shared chains are
	// every runtime's and left out.
	type rule struct{ table, line string }
	var rules []rule
	ours := map[string]bool{}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A"):
			l = counters.ReplaceAllString(l, "")
			rules = append(rules, rule{table, l})
			if ourSubnets.MatchString(l) || strings.Contains(l, " stt") || strings.Contains(l, " st-") {
				if f := strings.Fields(l); len(f) > 0 {
					for i, w := range f {
						if w == "-j" && i+1 < len(f) && strings.HasPrefix(f[i+1], "CNI-") && !sharedChainName(f[i+1]) {
							ours[table+" "+f[i+1]] = true
						}
					}
				}
			}
		}
	}
	for _, r := range rules {
		f := strings.Fields(r.line)
		if ourSubnets.MatchString(r.line) || strings.Contains(r.line, " stt") || strings.Contains(r.line, " st-") ||
			(len(f) > 1 && ours[r.table+" "+f[1]]) {
			s.iptables = append(s.iptables, r.table+" "+r.line)
		}
	}
	for c := range ours {
		s.iptables = append(s.iptables, c+" (chain)")
	}
	slices.Sort(s.iptables)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	tmp := os.TempDir()
	for sc.Scan() {
		if strings.Contains(sc.Text(), " - nsfs ") {
			if mp := strings.Fields(sc.Text())[4]; strings.HasPrefix(mp, tmp) {
				s.nsMounts = append(s.nsMounts, mp)
			}
		}
	}
	// libcni's cache: <network>-<container id>-<interface>; the tests'
	// container ids start with "c-" (none of another runtime's do).
	entries, _ := os.ReadDir("/var/lib/cni/results")
	for _, e := range entries {
		if strings.Contains(e.Name(), "-c-") {
			s.cache = append(s.cache, e.Name())
		}
	}
	return s
}

// sharedChainName reports whether chain is one the plugins share between
// every container of every runtime (cleanup.go's sharedChains).
func sharedChainName(chain string) bool {
	for _, c := range sharedChains {
		if c.chain == chain {
			return true
		}
	}
	return false
}

func diffLists(what string, before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, fmt.Sprintf("%s left: %s", what, a))
		}
	}
	for _, b := range before {
		if !slices.Contains(after, b) {
			out = append(out, fmt.Sprintf("%s gone: %s", what, b))
		}
	}
	return out
}

// checkHostClean fails the test at its end if it left (or removed) a link,
// an iptables rule or chain, a namespace mount or a CNI cache entry. It
// runs after every cleanup registered later.
func checkHostClean(t testing.TB) {
	t.Helper()
	before := captureHostState(t)
	t.Cleanup(func() {
		after := captureHostState(t)
		var diffs []string
		diffs = append(diffs, diffLists("link", before.links, after.links)...)
		diffs = append(diffs, diffLists("iptables", before.iptables, after.iptables)...)
		diffs = append(diffs, diffLists("netns mount", before.nsMounts, after.nsMounts)...)
		diffs = append(diffs, diffLists("CNI cache", before.cache, after.cache)...)
		if len(diffs) > 0 {
			t.Errorf("the host changed:\n%s", strings.Join(diffs, "\n"))
		}
	})
}

var testNets atomic.Int32

// newTestManager opens a manager on temporary directories with its own
// default bridge and subnets (10.250-253.x, which the host does not use),
// and tears everything down when the test ends: every endpoint (this
// process holds those it set up, which Cleanup keeps), every network, then
// checks the IPAM directory is empty and the host unchanged.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces, bridges and iptables need root")
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/portmap", "/usr/lib/cni/firewall", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: install Debian's containernetworking-plugins (scripts/deps.sh)", err)
		}
	}
	testutil.LockHostNetwork(t)
	checkHostClean(t)
	n := testNets.Add(1)
	root, state := t.TempDir(), t.TempDir()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# test\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := fmt.Sprintf("stt%d-%d", os.Getpid()%100000, n)
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.250.%d.0/24", n%250))
	m, err := New(root, state, WithDefaultNetwork(bridge, subnet), WithPool(netip.MustParsePrefix("10.251.0.0/16")), WithResolvConf(resolv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := testCtx
		tearDownAll(t, m)
		if _, err := m.Cleanup(ctx, func(string, string) bool { return false }); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		nets, err := m.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nets {
			if !n.Default {
				if err := m.Remove(ctx, n.Name); err != nil {
					t.Errorf("Remove(%s): %v", n.Name, err)
				}
			}
		}
		var left []string
		filepath.WalkDir(filepath.Join(root, "ipam"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "last_reserved_ip") && d.Name() != "lock" {
				left = append(left, p)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("IPAM leases left: %q", left)
		}
		for _, d := range []string{"netns", "containers"} {
			if e, _ := os.ReadDir(filepath.Join(state, d)); len(e) > 0 {
				t.Errorf("%s/%s not empty: %v", state, d, e)
			}
		}
	})
	return m
}

// tearDownAll tears down every endpoint of m, whoever holds it.
func tearDownAll(t testing.TB, m *Manager) {
	t.Helper()
	ctx := context.Background()
	unlock, err := m.lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	eps, err := m.endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if err := m.teardown(ctx, ep); err != nil {
			t.Errorf("teardown %s: %v", ep, err)
		}
	}
}

// inNetNS runs a command in a container's network namespace, with the
// container's hosts file bind-mounted on /etc/hosts in a private mount
// namespace, and returns its combined output and error.
func inNetNS(ep *Endpoint, args ...string) (string, error) {
	script := fmt.Sprintf("mount --bind %q /etc/hosts && exec nsenter --net=%q \"$@\"", ep.HostsPath, ep.NetNS)
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
