package peercred

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/peer"

	"github.com/strata-oci/strata/namespaces"
)

func asPeer(uid uint32) context.Context {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: AuthInfo{UID: uid, Known: true}})
}

// TestRequireRoot: what acts on paths or mounts as root is root's alone; a
// peer whose uid is unknown is not root. (The uid itself comes from
// SO_PEERCRED: cmd/strata's TestClientModeNonRoot asks as nobody.)
func TestRequireRoot(t *testing.T) {
	root, nobody, unknown := asPeer(0), asPeer(65534), context.Background()
	if UID(root) != 0 || UID(nobody) != 65534 || UID(unknown) != -1 {
		t.Fatalf("UID = %d %d %d", UID(root), UID(nobody), UID(unknown))
	}
	if err := RequireRoot(root, "x"); err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []context.Context{nobody, unknown} {
		if err := RequireRoot(ctx, "x"); !errdefs.IsPermissionDenied(err) {
			t.Fatalf("RequireRoot: %v", err)
		}
	}
}
