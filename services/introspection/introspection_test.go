package introspection_test

import (
	"context"
	"testing"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/server/servertest"
)

// TestPluginInfo (issue 12, item 3): containerd 2.x clients ask
// Introspection.PluginInfo for one plugin (the snapshotter's details, the
// runtime's); it answers as Plugins lists it, NotFound for an unknown one,
// NotImplemented for extra information no strata plugin offers.
func TestPluginInfo(t *testing.T) {
	d := servertest.Start(t)
	ic := introspectionapi.NewIntrospectionClient(d.Conn)
	ctx := servertest.Context(context.Background(), "default")
	resp, err := ic.PluginInfo(ctx, &introspectionapi.PluginInfoRequest{Type: "io.containerd.snapshotter.v1", ID: "native"})
	if err != nil {
		t.Fatalf("PluginInfo(native snapshotter) = %v", err)
	}
	if p := resp.Plugin; p.Type != "io.containerd.snapshotter.v1" || p.ID != "native" || len(p.Platforms) != 1 {
		t.Fatalf("PluginInfo(native snapshotter) = %+v, want the plugin with its platform", p)
	}
	_, err = ic.PluginInfo(ctx, &introspectionapi.PluginInfoRequest{Type: "io.containerd.snapshotter.v1", ID: "zfs"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("PluginInfo(unknown) = %v, want NotFound", err)
	}
	_, err = ic.PluginInfo(ctx, &introspectionapi.PluginInfoRequest{Type: "io.containerd.snapshotter.v1", ID: "native", Options: &anypb.Any{TypeUrl: "x"}})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("PluginInfo(with options) = %v, want Unimplemented", err)
	}
}
