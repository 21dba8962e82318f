package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/testutil"
)

// TestNetworkCommands: create (with --subnet/--gateway and without), ls,
// inspect and rm of user-defined networks, refusal while a container is
// attached (a real CNI setup), and nothing left on the host.
func TestNetworkCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bridges and network namespaces need root")
	}
	testutil.LockHostNetwork(t)
	c := newCLI(t)
	state := filepath.Join(c.root, "network.run")
	// A subnet of this process's own: engineers' tests share the host.
	subnet := fmt.Sprintf("10.198.%d.0/24", os.Getpid()%250)
	gateway := strings.TrimSuffix(subnet, "0/24") + "254"
	id := strings.TrimSpace(c.ok("network", "create", "--subnet", subnet, "--gateway", gateway, "--label", "team=web", "web"))
	if len(id) != 64 {
		t.Fatalf("network create = %q, want a 64-digit ID", id)
	}
	c.fails(1, "the name is taken", "network", "create", "--subnet", "10.197.0.0/24", "web")
	c.fails(1, "overlaps", "network", "create", "--subnet", subnet, "web2")
	c.fails(2, `--subnet "x"`, "network", "create", "--subnet", "x", "web3")
	c.fails(2, "--gateway 10.0.0.1 needs --subnet", "network", "create", "--gateway", "10.0.0.1", "web3")
	c.fails(1, "network name", "network", "create", "--subnet", "10.197.0.0/24", "--", "-bad")

	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(c.ok("network", "ls")), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	want := []string{"NETWORK ID NAME DRIVER SUBNET", "000000000000 bridge bridge 10.87.0.0/16", id[:12] + " web bridge " + subnet, "host host host -", "none none null -"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("network ls:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	var nets []networkJSON
	if err := json.Unmarshal([]byte(c.ok("network", "inspect", "web")), &nets); err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].ID != id || nets[0].Subnet != subnet || nets[0].Gateway != gateway || nets[0].Labels["team"] != "web" {
		t.Fatalf("network inspect web = %+v", nets)
	}
	c.fails(1, "network nope: not found", "network", "inspect", "nope")

	// A container attached to it, through the same files the CLI opens.
	ctx := namespaces.WithNamespace(context.Background(), namespaces.Default)
	m, err := network.New(filepath.Join(c.root, "network"), state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Teardown(ctx, "ctr1") // held by this process: Cleanup keeps it
		if _, err := m.Cleanup(ctx, func(string, string) bool { return false }); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		m.Remove(ctx, "web")
	})
	if _, err := m.Setup(ctx, "ctr1", network.Request{Network: "web", Name: "one"}); err != nil {
		t.Fatal(err)
	}
	c.fails(1, "network: remove web: container ctr1 is attached to it", "network", "rm", "web")
	if err := json.Unmarshal([]byte(c.ok("network", "inspect", "web")), &nets); err != nil {
		t.Fatal(err)
	}
	if len(nets[0].Containers) != 1 || nets[0].Containers[0] != "ctr1" {
		t.Errorf("network inspect web: containers %v, want [ctr1]", nets[0].Containers)
	}
	if err := m.Teardown(ctx, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if got := c.ok("network", "rm", "web"); got != "web\n" {
		t.Errorf("network rm web = %q", got)
	}
	c.fails(1, "network nope: not found", "network", "rm", "nope")
	c.fails(1, "a built-in network cannot be removed", "network", "rm", "bridge")
	if _, err := netip.ParsePrefix(subnet); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/st-" + id[:12]); !os.IsNotExist(err) {
		t.Errorf("bridge st-%s left after rm: %v", id[:12], err)
	}
}
