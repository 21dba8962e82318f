package network

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestTwoContainersOnAUserNetwork: two namespaces on one user-defined
// network reach each other by name through the hosts files Setup wrote,
// a network in use cannot be removed, and a container that leaves
// disappears from the other's hosts file.
func TestTwoContainersOnAUserNetwork(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
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
