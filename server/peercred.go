package server

import (
	"context"
	"fmt"
	"net"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/strata-oci/strata/jobs"
)

// peerCreds are the transport credentials of the daemon's unix socket:
// nothing on the wire (clients dial it insecure, as containerd's do), but
// each connection learns its peer's uid from the kernel (SO_PEERCRED), for
// the calls that act on paths with the daemon's privileges.
type peerCreds struct{}

// peerAuth is the AuthInfo of a connection: the peer's uid, if known.
type peerAuth struct {
	credentials.CommonAuthInfo
	uid   uint32
	known bool
}

func (peerAuth) AuthType() string { return "peercred" }

// PeerUID implements access.Peer, for the services outside this package.
func (a peerAuth) PeerUID() (uint32, bool) { return a.uid, a.known }

func (peerCreds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return conn, peerAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	auth := peerAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	if uc, ok := conn.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					auth.uid, auth.known = cred.Uid, true
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

// peerUID returns the uid of the call's peer, or -1 when unknown (not a
// unix socket).
func peerUID(ctx context.Context) int64 {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.AuthInfo.(peerAuth); ok && a.known {
			return int64(a.uid)
		}
	}
	return -1
}

// rootOnly refuses what only root may ask of the daemon: calls that
// mount what the client names (the diff service) act as root on any path.
func rootOnly(ctx context.Context, what string) error {
	if uid := peerUID(ctx); uid != 0 {
		return fmt.Errorf("%s: the daemon mounts what it is given as root, so only root may ask (%s): %w", what, peerName(uid), errdefs.ErrPermissionDenied)
	}
	return nil
}

func peerName(uid int64) string {
	if uid < 0 {
		return "an unknown peer"
	}
	return fmt.Sprintf("uid %d", uid)
}

// checkPaths refuses a request that names files for the daemon to open
// (an archive to import or export, a registry hosts directory) unless its
// peer is root: the daemon opens them as root, and a member of the
// socket's group must not read or write files through it that it could
// not itself. Others stream archives through the client instead (-).
func checkPaths(req jobs.Request, uid int64) error {
	if uid == 0 {
		return nil
	}
	var path, instead string
	switch {
	case req.Import != nil && req.Import.Path != "":
		path, instead = "archive "+req.Import.Path, "stream the archive through the client instead"
	case req.Export != nil && req.Export.Path != "":
		path, instead = "archive "+req.Export.Path, "stream the archive through the client instead"
	case req.Pull != nil && req.Pull.Registry.HostsDir != "":
		path, instead = "hosts directory "+req.Pull.Registry.HostsDir, "the daemon's registry.config_path applies"
	case req.Push != nil && req.Push.Registry.HostsDir != "":
		path, instead = "hosts directory "+req.Push.Registry.HostsDir, "the daemon's registry.config_path applies"
	default:
		return nil
	}
	return fmt.Errorf("%s: the daemon opens paths as root, for root only (%s); %s: %w",
		path, peerName(uid), instead, errdefs.ErrPermissionDenied)
}
