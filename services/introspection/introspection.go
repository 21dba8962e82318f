// Package introspection serves containerd.services.introspection.v1:
// which plugins the daemon has (what `ctr plugins ls` prints), and the
// daemon's identity.
package introspection

import (
	"context"
	"fmt"
	"os"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpc "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/images"
)

// Plugin describes one part of strata for introspection, in containerd's
// terms (type, id, requires, exports, capabilities, init error).
type Plugin struct {
	Type, ID     string
	Requires     []string
	Exports      map[string]string
	Capabilities []string
	InitErr      error
}

// Service serves containerd.services.introspection.v1: the daemon's
// identity, and the plugins it lists.
type Service struct {
	introspectionapi.UnimplementedIntrospectionServer
	uuid    string
	plugins func() []Plugin
}

// New returns the service of the daemon whose store is uuid, answering
// with what plugins returns at each call.
func New(uuid string, plugins func() []Plugin) *Service {
	return &Service{uuid: uuid, plugins: plugins}
}

// Register serves the service on g.
func (i *Service) Register(g *grpc.Server) {
	introspectionapi.RegisterIntrospectionServer(g, i)
}

// pluginFields lets introspection filters (type, id, capabilities) match.
func pluginFields(p *introspectionapi.Plugin) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "type":
			return p.Type, true
		case "id":
			return p.ID, true
		case "capabilities":
			for _, c := range p.Capabilities {
				if len(fieldpath) > 1 && c == fieldpath[1] {
					return c, true
				}
			}
		}
		return "", false
	})
}

func (i *Service) Plugins(ctx context.Context, req *introspectionapi.PluginsRequest) (*introspectionapi.PluginsResponse, error) {
	filter, err := filters.ParseAll(req.Filters...)
	if err != nil {
		return nil, err
	}
	var out []*introspectionapi.Plugin
	for _, p := range i.plugins() {
		if pp := pluginToProto(p); filter.Match(pluginFields(pp)) {
			out = append(out, pp)
		}
	}
	return &introspectionapi.PluginsResponse{Plugins: out}, nil
}

func pluginToProto(p Plugin) *introspectionapi.Plugin {
	pp := &introspectionapi.Plugin{Type: p.Type, ID: p.ID, Requires: p.Requires, Exports: p.Exports, Capabilities: p.Capabilities}
	if p.Type == "io.containerd.snapshotter.v1" || p.Type == "io.containerd.differ.v1" || p.Type == "io.containerd.runtime.v2" {
		host := images.DefaultPlatform()
		pp.Platforms = []*types.Platform{{OS: host.OS, Architecture: host.Architecture, Variant: host.Variant}}
	}
	if p.InitErr != nil {
		pp.InitErr = &rpc.Status{Code: int32(code.Code_UNKNOWN), Message: p.InitErr.Error()}
	}
	return pp
}

// PluginInfo returns one plugin as Plugins lists it, as containerd 2.x
// clients ask for it (the runtime's, a snapshotter's). Extra information
// (req.Options) is a plugin's own; none of strata's offers any, which is
// errdefs.ErrNotImplemented, as containerd answers for such plugins. An
// unknown plugin is errdefs.ErrNotFound.
func (i *Service) PluginInfo(ctx context.Context, req *introspectionapi.PluginInfoRequest) (*introspectionapi.PluginInfoResponse, error) {
	for _, p := range i.plugins() {
		if p.Type != req.Type || p.ID != req.ID {
			continue
		}
		resp := &introspectionapi.PluginInfoResponse{Plugin: pluginToProto(p)}
		if req.Options != nil {
			if p.InitErr != nil {
				return nil, fmt.Errorf("plugin %s.%s: cannot get extra info, plugin not loaded: %w", req.Type, req.ID, errdefs.ErrFailedPrecondition)
			}
			return nil, fmt.Errorf("plugin %s.%s: provides no extra information: %w", req.Type, req.ID, errdefs.ErrNotImplemented)
		}
		return resp, nil
	}
	return nil, fmt.Errorf("plugin %s.%s: %w", req.Type, req.ID, errdefs.ErrNotFound)
}

func (i *Service) Server(context.Context, *emptypb.Empty) (*introspectionapi.ServerResponse, error) {
	return &introspectionapi.ServerResponse{UUID: i.uuid, Pid: uint64(os.Getpid())}, nil
}
