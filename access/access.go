// Package access decides what a peer of the daemon's socket may ask. The
// socket is open to root and to the members of its group; reading records
// is open to all of them, but creating, changing or deleting containers and
// running tasks hands out root (a container's spec names its mounts,
// capabilities and user), so by default only root peers may, and the group
// only when the daemon's configuration says so ([runtime] allow_group),
// which makes its members root-equivalent.
//
// The peer's uid comes from the kernel (SO_PEERCRED) through the server's
// transport credentials, whose AuthInfo implements Peer.
package access

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/peer"
)

// Peer is what a connection's credentials.AuthInfo implements when the
// peer's uid is known.
type Peer interface {
	// PeerUID returns the uid of the process that connected; ok is false
	// when it is unknown (not a unix socket).
	PeerUID() (uid uint32, ok bool)
}

// PeerUID returns the uid of the call's peer, or -1 when unknown.
func PeerUID(ctx context.Context) int64 {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.AuthInfo.(Peer); ok {
			if uid, ok := a.PeerUID(); ok {
				return int64(uid)
			}
		}
	}
	return -1
}

// Policy says who may run containers.
type Policy struct {
	// AllowGroup lets every peer that can reach the socket (its group)
	// create, change and delete containers and tasks: root-equivalent.
	AllowGroup bool
}

// MayRun returns nil when the call's peer may do what (a verb and its
// object: "create container c1"), errdefs.ErrPermissionDenied naming what,
// the peer and the setting otherwise. The containers and tasks services
// call it before every call that creates, changes or deletes, and the
// events service before it publishes or forwards a task's or a
// container's event for a client; reads need no check.
func (p Policy) MayRun(ctx context.Context, what string) error {
	uid := PeerUID(ctx)
	if uid == 0 || p.AllowGroup {
		return nil
	}
	who := "an unknown peer"
	if uid >= 0 {
		who = fmt.Sprintf("uid %d", uid)
	}
	return fmt.Errorf("%s: only root may create, change or delete containers and tasks (asked by %s); "+
		"the daemon setting [runtime] allow_group = true lets the socket's group do it, which makes its members root-equivalent: %w",
		what, who, errdefs.ErrPermissionDenied)
}
