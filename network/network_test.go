package network

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// TestTwoContainersOnAUserNetwork: two namespaces on one user-defined
// network reach each other by name through the hosts files Setup wrote,
// a network in use cannot be removed, and a container that leaves
// disappears from the other's hosts file.
func TestTwoContainersOnAUserNetwork(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	n, err := m.Create(ctx, CreateRequest{Name: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Setup(ctx, "c-alpha", Request{Network: "backend", Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Setup(ctx, "c-beta", Request{Network: "backend", Name: "beta", Hostname: "beta-host"})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Subnet.Contains(a.IP) || !n.Subnet.Contains(b.IP) || a.IP == b.IP || a.Gateway != n.Gateway {
		t.Fatalf("addresses %s and %s (gateway %s), want two in %s via %s", a.IP, b.IP, a.Gateway, n.Subnet, n.Gateway)
	}
	for _, tt := range []struct {
		from *Endpoint
		to   string
	}{{a, "beta"}, {a, "beta-host"}, {b, "alpha"}} {
		if out, err := inNetNS(tt.from, "busybox", "ping", "-c", "1", tt.to); err != nil || !strings.Contains(out, "1 packets received") {
			t.Errorf("ping %s from %s: %v\n%s", tt.to, tt.from.ContainerID, err, out)
		}
	}
	hosts, err := os.ReadFile(a.HostsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hosts), b.IP.String()+"\tbeta beta-host\n") || !strings.Contains(string(hosts), a.IP.String()+"\tc-alpha alpha\n") {
		t.Errorf("alpha's hosts:\n%s", hosts)
	}
	if h, _ := os.ReadFile(b.HostnamePath); string(h) != "beta-host\n" {
		t.Errorf("beta's hostname file %q", h)
	}
	if r, _ := os.ReadFile(a.ResolvConfPath); string(r) != "nameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n" {
		t.Errorf("resolv.conf (without the loopback nameserver):\n%s", r)
	}

	err = m.Remove(ctx, "backend")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "c-alpha") && !strings.Contains(err.Error(), "c-beta") {
		t.Errorf("Remove(backend) in use = %v, want FailedPrecondition naming a container", err)
	}
	if _, err := m.Setup(ctx, "c-beta", Request{Network: "backend"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Setup(c-beta) = %v, want AlreadyExists", err)
	}

	if err := m.Teardown(ctx, "c-beta"); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, "c-beta"); err != nil {
		t.Errorf("second Teardown(c-beta) = %v, want nil", err)
	}
	hosts, _ = os.ReadFile(a.HostsPath)
	if strings.Contains(string(hosts), "beta") {
		t.Errorf("alpha's hosts still names beta after it left:\n%s", hosts)
	}
	if out, err := inNetNS(a, "busybox", "ping", "-c", "1", "-W", "1", b.IP.String()); err == nil {
		t.Errorf("ping %s after beta left succeeded:\n%s", b.IP, out)
	}
	if _, err := os.Stat(b.NetNS); !os.IsNotExist(err) {
		t.Errorf("beta's namespace %s: %v, want removed", b.NetNS, err)
	}
	if err := m.Teardown(ctx, "c-alpha"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "backend"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "backend"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(backend) after Remove = %v, want NotFound", err)
	}
}

// serveHTTP starts busybox httpd in a container's namespace, serving a
// file that says who it is, and stops it when the test ends.
func serveHTTP(t *testing.T, ep *Endpoint, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+ep.NetNS, "busybox", "httpd", "-f", "-p", strconv.Itoa(port), "-h", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("httpd: %s", stderr.String())
		}
	})
	// Wait until it listens, seen from inside its namespace.
	for i := 0; ; i++ {
		out, _ := exec.Command("nsenter", "--net="+ep.NetNS, "busybox", "netstat", "-ltn").Output()
		if strings.Contains(string(out), fmt.Sprintf(":%d ", port)) {
			return
		}
		if i == 1000 {
			t.Fatalf("httpd in %s does not listen on %d:\n%s", ep.ContainerID, port, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	c := http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPublishedPorts: a port published on the default network answers on
// 127.0.0.1 and on the host's other addresses (portmap v1.1.1 DNATs
// locally generated traffic in OUTPUT, sets route_localnet on the bridge and
// masquerades 127.0.0.0/8 sources), a port bound to 127.0.0.1 only answers
// there, and a host port that a host process or another container holds is
// refused without leaving anything behind.
func TestPublishedPorts(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := uint16(l.Addr().(*net.TCPAddr).Port)
	free := func() uint16 {
		p, err := freePort("tcp")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	allPort, loPort := free(), free()

	web, err := m.Setup(ctx, "c-web", Request{Ports: []PortMapping{
		{HostPort: allPort, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: loPort, ContainerPort: 8080, Protocol: "tcp"},
		{ContainerPort: 81, Protocol: "tcp"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(web.Ports) != 3 || web.Ports[2].HostPort == 0 {
		t.Fatalf("ports %v, want a host port picked for 81", web.Ports)
	}
	serveHTTP(t, web, 80, "web on 80")
	serveHTTP(t, web, 8080, "web on 8080")
	serveHTTP(t, web, 81, "web on 81")

	// An address of the host's own, not of a bridge (eth0's here).
	hostIP := ""
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !strings.HasPrefix(p.Addr().String(), "10.25") {
			hostIP = p.Addr().String()
			break
		}
	}
	if hostIP == "" {
		t.Fatalf("the host has no IPv4 address but loopback and the test's: %v", addrs)
	}
	for _, tt := range []struct {
		url, want string
	}{
		{fmt.Sprintf("http://127.0.0.1:%d/", allPort), "web on 80"},
		{fmt.Sprintf("http://%s:%d/", hostIP, allPort), "web on 80"},
		{fmt.Sprintf("http://127.0.0.1:%d/", loPort), "web on 8080"},
		{fmt.Sprintf("http://127.0.0.1:%d/", web.Ports[2].HostPort), "web on 81"},
		{fmt.Sprintf("http://%s:80/", web.IP), "web on 80"},
	} {
		if body, err := get(tt.url); err != nil || body != tt.want {
			t.Errorf("GET %s = %q, %v; want %q", tt.url, body, err, tt.want)
		}
	}
	if body, err := get(fmt.Sprintf("http://%s:%d/", hostIP, loPort)); err == nil {
		t.Errorf("port %d published on 127.0.0.1 only answers on %s: %q", loPort, hostIP, body)
	}

	for _, tt := range []struct {
		port  PortMapping
		names string
	}{
		{PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: busy, ContainerPort: 80, Protocol: "tcp"}, "in use"},
		{PortMapping{HostPort: allPort, ContainerPort: 80, Protocol: "tcp"}, "c-web"},
		{PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: allPort, ContainerPort: 80, Protocol: "tcp"}, "c-web"},
	} {
		_, err := m.Setup(ctx, "c-second", Request{Ports: []PortMapping{tt.port}})
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), strconv.Itoa(int(tt.port.HostPort))) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("Setup with port %s = %v, want AlreadyExists naming the port and %q", tt.port, err, tt.names)
		}
		if _, err := m.Endpoint(ctx, "c-second"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("after the refused Setup: endpoint %v", err)
		}
		if _, err := os.Stat(filepath.Join(m.state, "netns", "c-second")); !os.IsNotExist(err) {
			t.Errorf("after the refused Setup: netns %v", err)
		}
	}
	// The same port on udp is another port.
	if _, err := m.Setup(ctx, "c-udp", Request{Ports: []PortMapping{{HostPort: allPort, ContainerPort: 53, Protocol: "udp"}}}); err != nil {
		t.Fatalf("Setup with %d/udp while %d/tcp is published: %v", allPort, allPort, err)
	}

	if err := m.Teardown(ctx, "c-web"); err != nil {
		t.Fatal(err)
	}
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", allPort)); err == nil {
		t.Errorf("port %d still answers after Teardown", allPort)
	}
	if err := m.Teardown(ctx, "c-udp"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSetup: two managers on the same directories (the CLI and
// the daemon) set up containers at once; the file lock keeps addresses
// distinct and every hosts file names every other container.
func TestConcurrentSetup(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	if _, err := m.Create(ctx, CreateRequest{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	other, err := New(m.root, m.state, WithDefaultNetwork(m.opts.defaultBridge, m.opts.defaultSubnet), WithResolvConf(m.opts.resolvConf))
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	eps := make([]*Endpoint, n)
	errs := make(chan error, n)
	for i := range n {
		mgr := m
		if i%2 == 1 {
			mgr = other
		}
		go func() {
			ep, err := mgr.Setup(ctx, fmt.Sprintf("c-%d", i), Request{Network: "shared", Name: fmt.Sprintf("name-%d", i)})
			eps[i] = ep
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	seen := map[netip.Addr]bool{}
	for i, ep := range eps {
		if seen[ep.IP] {
			t.Errorf("address %s given twice", ep.IP)
		}
		seen[ep.IP] = true
		hosts, err := os.ReadFile(ep.HostsPath)
		if err != nil {
			t.Fatal(err)
		}
		for j, peer := range eps {
			if j != i && !strings.Contains(string(hosts), fmt.Sprintf("%s\tname-%d c-%d\n", peer.IP, j, j)) {
				t.Errorf("c-%d's hosts lacks c-%d (%s):\n%s", i, j, peer.IP, hosts)
			}
		}
	}
	for i := range n {
		if err := other.Teardown(ctx, fmt.Sprintf("c-%d", i)); err != nil {
			t.Error(err)
		}
	}
}
