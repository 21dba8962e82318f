package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestNetworkStore: create, list, inspect and remove user-defined networks,
// and each way a request can be refused, with nothing written then.
func TestNetworkStore(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx

	a, err := m.Create(ctx, CreateRequest{Name: "front", Labels: map[string]string{"team": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, CreateRequest{Name: "back.end_2", Subnet: netip.MustParsePrefix("10.252.7.9/24"), Gateway: netip.MustParseAddr("10.252.7.254")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Create(ctx, CreateRequest{Name: "third"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet != netip.MustParsePrefix("10.251.0.0/24") || a.Gateway != netip.MustParseAddr("10.251.0.1") || c.Subnet != netip.MustParsePrefix("10.251.1.0/24") {
		t.Errorf("pool subnets %s (gateway %s) and %s, want 10.251.0.0/24 (.1) and 10.251.1.0/24", a.Subnet, a.Gateway, c.Subnet)
	}
	if b.Subnet != netip.MustParsePrefix("10.252.7.0/24") || b.Gateway != netip.MustParseAddr("10.252.7.254") {
		t.Errorf("back.end_2: %s via %s", b.Subnet, b.Gateway)
	}
	if len(a.Bridge) > 15 || a.Bridge == b.Bridge || !strings.HasPrefix(a.Bridge, "st-") {
		t.Errorf("bridges %q and %q: want distinct st-<id> names of at most 15 bytes", a.Bridge, b.Bridge)
	}

	got, err := m.Get(ctx, "front")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Subnet != a.Subnet || got.Bridge != a.Bridge || got.Labels["team"] != "web" || !got.Created.Equal(a.Created) {
		t.Errorf("Get(front) = %+v, want %+v", got, a)
	}
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "back.end_2,bridge,front,third" {
		t.Errorf("List = %q", names)
	}

	// A network's file is a CNI config list libcni loads.
	data, err := os.ReadFile(filepath.Join(m.root, "networks", "front.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.cni(data); err != nil {
		t.Errorf("the stored config list does not load: %v", err)
	}

	bad := []struct {
		req   CreateRequest
		want  error
		names string
	}{
		{CreateRequest{Name: "front"}, errdefs.ErrAlreadyExists, "front"},
		{CreateRequest{Name: "bridge"}, errdefs.ErrAlreadyExists, "bridge"},
		{CreateRequest{Name: "host"}, errdefs.ErrAlreadyExists, "host"},
		{CreateRequest{Name: "-x"}, errdefs.ErrInvalidArgument, "-x"},
		{CreateRequest{Name: "a/b"}, errdefs.ErrInvalidArgument, "a/b"},
		{CreateRequest{Name: "n1", Subnet: netip.MustParsePrefix("10.252.0.0/16")}, errdefs.ErrInvalidArgument, "back.end_2"},
		{CreateRequest{Name: "n2", Subnet: netip.MustParsePrefix("10.250.0.0/16")}, errdefs.ErrInvalidArgument, "network bridge"},
		{CreateRequest{Name: "n3", Subnet: netip.MustParsePrefix("127.0.0.0/24")}, errdefs.ErrInvalidArgument, "host's 127.0.0.0/8"},
		{CreateRequest{Name: "n4", Subnet: netip.MustParsePrefix("fd00:1::/64")}, errdefs.ErrInvalidArgument, "IPv4"},
		{CreateRequest{Name: "n5", Subnet: netip.MustParsePrefix("10.253.0.0/31")}, errdefs.ErrInvalidArgument, "/30"},
		{CreateRequest{Name: "n6", Subnet: netip.MustParsePrefix("10.253.0.0/24"), Gateway: netip.MustParseAddr("10.253.1.1")}, errdefs.ErrInvalidArgument, "10.253.1.1"},
		{CreateRequest{Name: "n7", Subnet: netip.MustParsePrefix("10.253.0.0/24"), Gateway: netip.MustParseAddr("10.253.0.255")}, errdefs.ErrInvalidArgument, "10.253.0.255"},
	}
	for _, tt := range bad {
		_, err := m.Create(ctx, tt.req)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("Create(%+v) = %v, want %v naming %q", tt.req, err, tt.want, tt.names)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(m.root, "networks"))
	if len(entries) != 3 {
		t.Errorf("%d files in networks/ after refused creates, want 3", len(entries))
	}

	for _, tt := range []struct {
		name string
		want error
	}{{"bridge", errdefs.ErrInvalidArgument}, {"none", errdefs.ErrInvalidArgument}, {"nosuch", errdefs.ErrNotFound}} {
		if err := m.Remove(ctx, tt.name); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("Remove(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := m.Setup(ctx, "c1", Request{Network: "nosuch"}); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("Setup on an unknown network = %v, want NotFound naming it", err)
	}
	if err := m.Remove(ctx, "front"); err != nil {
		t.Fatal(err)
	}
	// The freed subnet is given again.
	d, err := m.Create(ctx, CreateRequest{Name: "fourth"})
	if err != nil || d.Subnet != a.Subnet {
		t.Errorf("Create(fourth) = %s, %v; want the freed %s", d.Subnet, err, a.Subnet)
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want PortMapping
	}{
		{"80", PortMapping{ContainerPort: 80, Protocol: "tcp"}},
		{"8080:80", PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		{"127.0.0.1:8080:80/udp", PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Protocol: "udp"}},
		{"0.0.0.0:8080:80", PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		{"127.0.0.1::80/sctp", PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 80, Protocol: "sctp"}},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "70000", "80/icmp", "x:80", "8080:", "::1:80:80", "1.2.3:80:80", "a:b:c:d", "80:0"} {
		if _, err := ParsePort(bad); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePort(%q) = %v, want InvalidArgument naming it", bad, err)
		}
	}
}
