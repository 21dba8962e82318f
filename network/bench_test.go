package network

import (
	"fmt"
	"testing"
)

// BenchmarkSetupTeardown is the network's share of `strata run` latency:
// a container on the default network with one published port, set up and
// torn down (namespace, bridge, portmap and firewall plugins, files).
func BenchmarkSetupTeardown(b *testing.B) {
	m := newTestManager(b)
	ctx := testCtx
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("c-bench-%d", i)
		if _, err := m.Setup(ctx, id, Request{Ports: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}}); err != nil {
			b.Fatal(err)
		}
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
