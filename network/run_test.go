package network

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/oci"
	"github.com/strata-oci/strata/oci/ocitest"
)

// TestRuncOnANetwork wires both packages as `strata run` will: runc runs a
// busybox container in the namespace Setup made, with its hosts,
// resolv.conf and hostname mounted, and from inside it sees its address,
// its files and its peer by name.
func TestRuncOnANetwork(t *testing.T) {
	m := newTestManager(t)
	ctx := testCtx
	if _, err := m.Create(ctx, CreateRequest{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	peer, err := m.Setup(ctx, "c-peer", Request{Network: "app", Name: "peer"})
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("strata-net-test-%d", os.Getpid())
	ep, err := m.Setup(ctx, id, Request{Network: "app", Name: "runner", Hostname: "runner"})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ocitest.BusyboxRootfs(t, rootfs)
	for _, f := range []string{"etc/hosts", "etc/resolv.conf", "etc/hostname"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parent := fmt.Sprintf("/strata-net-test-%d", os.Getpid())
	spec, err := oci.Generate(ctx, oci.Options{
		ID: id, Rootfs: rootfs, Hostname: ep.Hostname, NetNSPath: ep.NetNS, Mounts: ep.Mounts(true),
		ReadOnly: true, CgroupParent: parent,
		Args: []string{"sh", "-c", "ip -o -4 addr show eth0; cat /etc/hostname /etc/resolv.conf; ping -c 1 peer"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, status := ocitest.Run(t, spec, id, parent)
	if status != 0 {
		t.Fatalf("runc run exited %d:\n%s", status, out)
	}
	for _, want := range []string{"inet " + ep.IP.String() + "/24", "runner\n", "nameserver 192.0.2.53", "PING peer (" + peer.IP.String() + ")", "1 packets received"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside the container: no %q in\n%s", want, out)
		}
	}
	for _, c := range []string{id, "c-peer"} {
		if err := m.Teardown(ctx, c); err != nil {
			t.Error(err)
		}
	}
}
