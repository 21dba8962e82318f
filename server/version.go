package server

import (
	"context"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"google.golang.org/protobuf/types/known/emptypb"
)

func init() {
	Register(func(s *Server) error {
		versionapi.RegisterVersionServer(s.GRPC(), &versionService{s: s})
		s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "version"})
		return nil
	})
}

type versionService struct {
	versionapi.UnimplementedVersionServer
	s *Server
}

func (v *versionService) Version(context.Context, *emptypb.Empty) (*versionapi.VersionResponse, error) {
	return &versionapi.VersionResponse{Version: v.s.cfg.Version, Revision: v.s.cfg.Revision}, nil
}
