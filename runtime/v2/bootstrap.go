package v2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// Bootstrap is how to reach a shim: the answer of its start command.
type Bootstrap struct {
	// Version is the task API version: 2 or 3.
	Version int `json:"version"`
	// Address is where the shim listens ("unix:///run/containerd/s/…").
	Address string `json:"address"`
	// Protocol is "ttrpc" (the only one spoken here) or "grpc".
	Protocol string `json:"protocol"`
}

// maxVersion is the newest task API spoken here.
const maxVersion = 3

// parseBootstrap reads a shim's start answer in the forms shims give: a
// JSON object {"version","address","protocol"} (containerd 1.7+ shims), a
// protobuf BootstrapResult (2.3+), or a plain address (older shims, task
// API 2 over ttrpc). An answer naming no address, an unknown protocol or a
// version newer than 3 is errdefs.ErrNotImplemented or
// errdefs.ErrInvalidArgument.
func parseBootstrap(out []byte) (Bootstrap, error) {
	trimmed := bytes.TrimSpace(out)
	var b Bootstrap
	switch {
	case len(trimmed) == 0:
		return b, fmt.Errorf("shim start answered nothing: %w", errdefs.ErrInvalidArgument)
	case trimmed[0] == '{':
		if err := json.Unmarshal(trimmed, &b); err != nil {
			return b, fmt.Errorf("shim start answer %q: %w: %w", trimmed, err, errdefs.ErrInvalidArgument)
		}
	case isAddress(string(trimmed)):
		b = Bootstrap{Version: 2, Address: string(trimmed), Protocol: "ttrpc"}
	default:
		var r bootapi.BootstrapResult
		if err := proto.Unmarshal(out, &r); err != nil || r.GetAddress() == "" {
			return b, fmt.Errorf("shim start answer %q: neither an address nor bootstrap parameters: %w", trimmed, errdefs.ErrInvalidArgument)
		}
		b = Bootstrap{Version: int(r.GetVersion()), Address: r.GetAddress(), Protocol: r.GetProtocol()}
	}
	if b.Address == "" {
		return b, fmt.Errorf("shim start answer %q names no address: %w", trimmed, errdefs.ErrInvalidArgument)
	}
	if b.Version < 2 {
		b.Version = 2
	}
	if b.Protocol == "" {
		b.Protocol = "ttrpc"
	}
	if b.Version > maxVersion {
		return b, fmt.Errorf("shim speaks task API v%d, newest known is v%d: %w", b.Version, maxVersion, errdefs.ErrNotImplemented)
	}
	if b.Protocol != "ttrpc" {
		return b, fmt.Errorf("shim protocol %q: only ttrpc is spoken: %w", b.Protocol, errdefs.ErrNotImplemented)
	}
	return b, nil
}

// isAddress tells a plain address answer from binary protobuf.
func isAddress(s string) bool {
	if strings.HasPrefix(s, "/") {
		return true
	}
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}
