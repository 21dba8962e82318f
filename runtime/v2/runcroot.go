package v2

import (
	"fmt"
	"path/filepath"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// runcOptionsURL is the type URL clients (ctr, nerdctl, BuildKit) give
// the runc shims' options, containerd's typeurl name for them.
const runcOptionsURL = "containerd.runc.v1.Options"

// withRuncRoot gives a runc shim's task the manager's runc root (runc
// --root, where runc keeps its containers' state) unless the client named
// one. runc's default, /run/containerd/runc/<namespace>, is shared by every
// daemon on the host: two daemons (two stratads, or a stratad and a
// containerd) with a task of the same namespace and id would find each
// other's container there, and one's cleanup would delete the other's.
// Options of another type, and other shims, are left as they are.
func (m *Manager) withRuncRoot(binary string, opts *anypb.Any) (*anypb.Any, error) {
	if m.cfg.RuncRoot == "" || filepath.Base(binary) != "containerd-shim-runc-v2" {
		return opts, nil
	}
	var ro runcoptions.Options
	if len(opts.GetValue()) > 0 || opts.GetTypeUrl() != "" {
		if !isRuncOptions(opts.GetTypeUrl()) {
			return opts, nil
		}
		if err := proto.Unmarshal(opts.GetValue(), &ro); err != nil {
			return nil, fmt.Errorf("runc options: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		if ro.Root != "" {
			return opts, nil
		}
	}
	ro.Root = m.cfg.RuncRoot
	b, err := proto.Marshal(&ro)
	if err != nil {
		return nil, fmt.Errorf("runc options: %w", err)
	}
	return &anypb.Any{TypeUrl: runcOptionsURL, Value: b}, nil
}

// isRuncOptions reports whether url names the runc shims' options, with
// or without a type.googleapis.com-style prefix.
func isRuncOptions(url string) bool {
	if url == runcOptionsURL {
		return true
	}
	i := len(url) - len(runcOptionsURL)
	return i > 0 && url[i-1] == '/' && url[i:] == runcOptionsURL
}
