package diff_test

import (
	"context"
	"testing"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/peer"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
	diffsvc "github.com/strata-oci/strata/services/diff"
)

// TestRootOnly: the diff service mounts what it is given, so it is root's
// alone; a peer whose uid is unknown is not root.
func TestRootOnly(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	nobody := peer.NewContext(ctx, &peer.Peer{AuthInfo: peercred.AuthInfo{UID: 65534, Known: true}})

	// The diff service mounts what it is given: root's only.
	ds := diffsvc.New(nil) // refused before the store is used
	_, err := ds.Apply(nobody, &diffapi.ApplyRequest{
		Diff:   &types.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000", Size: 1},
		Mounts: []*types.Mount{{Type: "bind", Source: "/", Options: []string{"rbind"}}},
	})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("Apply onto / from nobody: %v", err)
	}
	_, err = ds.Diff(nobody, &diffapi.DiffRequest{Right: []*types.Mount{{Type: "bind", Source: "/etc", Options: []string{"rbind"}}}})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("Diff of /etc from nobody: %v", err)
	}
}
