package server

import (
	"context"
	"os"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpc "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/images"
)

func init() {
	Register(func(s *Server) error {
		introspectionapi.RegisterIntrospectionServer(s.GRPC(), &introspectionService{s: s})
		s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "introspection"})
		return nil
	})
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
	host := images.DefaultPlatform()
	var out []*introspectionapi.Plugin
	for _, p := range i.s.Plugins() {
		pp := &introspectionapi.Plugin{Type: p.Type, ID: p.ID, Requires: p.Requires, Exports: p.Exports, Capabilities: p.Capabilities}
		if p.Type == "io.containerd.snapshotter.v1" || p.Type == "io.containerd.differ.v1" {
			pp.Platforms = []*types.Platform{{OS: host.OS, Architecture: host.Architecture, Variant: host.Variant}}
		}
		if p.InitErr != nil {
			pp.InitErr = &rpc.Status{Code: int32(code.Code_UNKNOWN), Message: p.InitErr.Error()}
		}
		if filter.Match(pluginFields(pp)) {
			out = append(out, pp)
		}
	}
	return &introspectionapi.PluginsResponse{Plugins: out}, nil
}

func (i *introspectionService) Server(context.Context, *emptypb.Empty) (*introspectionapi.ServerResponse, error) {
	return &introspectionapi.ServerResponse{UUID: i.s.cfg.UUID, Pid: uint64(os.Getpid())}, nil
}
