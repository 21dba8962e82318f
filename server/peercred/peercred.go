// Package peercred gives the daemon's gRPC server the uid of each peer on
// its unix socket, from the kernel (SO_PEERCRED), and the services the
// means to ask for it: UID, and RequireRoot for the calls that act on
// paths or mounts with the daemon's privileges (the diff service, jobs
// that name files, the tasks service).
//
// Typical use:
//
//	srv := grpc.NewServer(grpc.Creds(peercred.Credentials()))
//	…
//	func (s *Service) Apply(ctx context.Context, …) (…, error) {
//		if err := peercred.RequireRoot(ctx, "apply a layer onto mounts"); err != nil {
//			return nil, err // errdefs.ErrPermissionDenied
//		}
package peercred

import (
	"context"
	"fmt"
	"net"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Credentials returns the transport credentials of the daemon's unix
// socket: nothing on the wire (clients dial it insecure, as containerd's
// do), but each connection learns its peer's uid from the kernel.
func Credentials() credentials.TransportCredentials { return peerCreds{} }

type peerCreds struct{}

// AuthInfo is the credentials.AuthInfo of a connection: the peer's uid,
// when Known. In-process callers and tests may put one on a context with
// peer.NewContext.
type AuthInfo struct {
	credentials.CommonAuthInfo
	UID   uint32
	Known bool
}

// AuthType names the credentials: "peercred".
func (AuthInfo) AuthType() string { return "peercred" }

// PeerUID implements access.Peer: the uid, and whether it is known.
func (a AuthInfo) PeerUID() (uint32, bool) { return a.UID, a.Known }

func (peerCreds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	auth := AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	if uc, ok := conn.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					auth.UID, auth.Known = cred.Uid, true
				}
			})
		}
	}
	return conn, auth, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil }

// UID returns the uid of the call's peer, or -1 when unknown (not a unix
// socket, or a context that did not come from the server).
func UID(ctx context.Context) int64 {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.AuthInfo.(AuthInfo); ok && a.Known {
			return int64(a.UID)
		}
	}
	return -1
}

// RequireRoot refuses what only root may ask of the daemon, with
// errdefs.ErrPermissionDenied naming what and the peer: calls that mount
// what the client names (the diff service) act as root on any path. A peer
// whose uid is unknown is not root.
func RequireRoot(ctx context.Context, what string) error {
	if uid := UID(ctx); uid != 0 {
		return fmt.Errorf("%s: the daemon mounts what it is given as root, so only root may ask (%s): %w", what, Name(uid), errdefs.ErrPermissionDenied)
	}
	return nil
}

// Name describes a peer by its uid in error messages: "uid 1000", or "an
// unknown peer" for -1.
func Name(uid int64) string {
	if uid < 0 {
		return "an unknown peer"
	}
	return fmt.Sprintf("uid %d", uid)
}
