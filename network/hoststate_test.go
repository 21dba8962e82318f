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

	"github.com/strata-oci/strata/testutil"
)

// hostState is what networking may leave on the host: links, iptables
// rules, network namespace mounts, CNI's result cache.
type hostState struct {
	links    []string
	iptables []string
	nsMounts []string
	cache    []string
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

func captureHostState(t testing.TB) hostState {
	t.Helper()
	var s hostState
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		s.links = append(s.links, i.Name)
	}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A"),
			// A chain of our own; a built-in one (with a policy) is
			// there whenever iptables-nft made the table.
			strings.HasPrefix(l, ":") && len(f) > 1 && f[1] == "-":
			s.iptables = append(s.iptables, table+" "+counters.ReplaceAllString(l, ""))
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " - nsfs ") {
			s.nsMounts = append(s.nsMounts, strings.Fields(sc.Text())[4])
		}
	}
	entries, _ := os.ReadDir("/var/lib/cni/results")
	for _, e := range entries {
		s.cache = append(s.cache, e.Name())
	}
	return s
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
// and tears everything down when the test ends: every endpoint, every
// network, then checks the IPAM directory is empty and the host unchanged.
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
		ctx := context.Background()
		if _, err := m.Cleanup(ctx, func(string) bool { return false }); err != nil {
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
