package server

import (
	"github.com/strata-oci/strata/services/containers"
)

// registerContainers serves containerd.services.containers.v1 over the
// metadata database (services/containers); who may change containers is
// cfg.Access's.
func (s *Server) registerContainers() {
	containers.New(containers.Config{
		Store: s.Store.DB.Containers(), Publisher: s.Events(), MayRun: s.cfg.Access.MayRun,
		Deletable: s.CheckContainerDeletable, // tasks.go
		Logger:    s.Log.With("service", "containers"),
	}).Register(s.grpc)
	s.AddPlugin(Plugin{Type: "io.containerd.service.v1", ID: "containers-service", Requires: []string{"io.containerd.metadata.v1"}})
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "containers", Requires: []string{"io.containerd.service.v1"}})
}
