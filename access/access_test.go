package access_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/strata-oci/strata/access"
)

type auth struct {
	credentials.CommonAuthInfo
	uid   uint32
	known bool
}

func (auth) AuthType() string          { return "test" }
func (a auth) PeerUID() (uint32, bool) { return a.uid, a.known }
func as(uid uint32, known bool) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: auth{uid: uid, known: known}})
}

// TestMayRun: root always; others (known or not) only with AllowGroup, and
// the refusal names the request, the peer and the setting. (A real non-root
// peer over the socket: server's TestContainersNonRootPeer.)
func TestMayRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		allowGroup bool
		ok         bool
		who        string
	}{
		{"root", as(0, true), false, true, ""},
		{"nobody", as(65534, true), false, false, "uid 65534"},
		{"unknown uid", as(0, false), false, false, "an unknown peer"},
		{"no peer", context.Background(), false, false, "an unknown peer"},
		{"nobody, group allowed", as(65534, true), true, true, ""},
		{"root, group allowed", as(0, true), true, true, ""},
	} {
		err := access.Policy{AllowGroup: tc.allowGroup}.MayRun(tc.ctx, "create container c1")
		if tc.ok {
			if err != nil {
				t.Errorf("%s: MayRun = %v, want nil", tc.name, err)
			}
			continue
		}
		if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), tc.who) ||
			!strings.Contains(err.Error(), "create container c1") || !strings.Contains(err.Error(), "allow_group") {
			t.Errorf("%s: MayRun = %v, want permission denied naming the request, %s and the setting", tc.name, err, tc.who)
		}
	}
}
