package protoconv_test

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/protoconv"
)

// TestContainerRoundTrip: every field of a container survives the API form,
// and an absent message or runtime reads as zero values.
func TestContainerRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 1, 2, time.UTC)
	a := &anypb.Any{TypeUrl: "x/y", Value: []byte("z")}
	for _, c := range []containers.Container{
		{
			ID: "c", Labels: map[string]string{"l": "v"}, Image: "img:1",
			Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2", Options: a}, Spec: a,
			Snapshotter: "overlayfs", SnapshotKey: "k", SandboxID: "pod",
			Extensions: map[string]*anypb.Any{"e": a}, CreatedAt: at, UpdatedAt: at,
		},
		{ID: "no-times", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"}},
	} {
		if got := protoconv.ContainerFromProto(protoconv.ContainerToProto(c)); !reflect.DeepEqual(got, c) {
			t.Errorf("round trip = %+v, want %+v", got, c)
		}
	}
	if got := protoconv.ContainerFromProto(nil); !reflect.DeepEqual(got, containers.Container{}) {
		t.Errorf("ContainerFromProto(nil) = %+v", got)
	}
}
