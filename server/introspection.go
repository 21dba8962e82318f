package server

import (
	"context"
	"fmt"
	"os"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpc "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/images"
)

// registerIntrospection serves containerd.services.introspection.v1, which
// answers with what the other register functions listed.
func (s *Server) registerIntrospection() {
	introspectionapi.RegisterIntrospectionServer(s.GRPC(), &introspectionService{s: s})
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "introspection"})
}

type introspectionService struct {
	introspectionapi.UnimplementedIntrospectionServer
	s *Server
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

func (i *introspectionService) Plugins(ctx context.Context, req *introspectionapi.PluginsRequest) (*introspectionapi.PluginsResponse, error) {
	filter, err := filters.ParseAll(req.Filters...)
	if err != nil {
		return nil, err
	}
	var out []*introspectionapi.Plugin
	for _, p := range i.s.Plugins() {
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
func (i *introspectionService) PluginInfo(ctx context.Context, req *introspectionapi.PluginInfoRequest) (*introspectionapi.PluginInfoResponse, error) {
	for _, p := range i.s.Plugins() {
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

func (i *introspectionService) Server(context.Context, *emptypb.Empty) (*introspectionapi.ServerResponse, error) {
	return &introspectionapi.ServerResponse{UUID: i.s.cfg.UUID, Pid: uint64(os.Getpid())}, nil
}
