package server

import (
	"path/filepath"
	"slices"

	"google.golang.org/grpc"

	introspectionsvc "github.com/strata-oci/strata/services/introspection"
)

// The plugin list introspection shows: each service is listed by New in
// containerd's terms (type, id, requires), so that `ctr plugins ls` reads
// as it does against containerd.

// Plugin describes one part of strata for introspection, in containerd's
// terms (type, id, requires, exports, capabilities, init error).
type Plugin = introspectionsvc.Plugin

// AddPlugin records a part of strata for introspection.
func (s *Server) AddPlugin(p Plugin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plugins = append(s.plugins, p)
}

// Plugins lists what AddPlugin recorded.
func (s *Server) Plugins() []Plugin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Plugin(nil), s.plugins...)
}

// registrar is a gRPC service of services/….
type registrar interface{ Register(*grpc.Server) }

// serve registers svc on the gRPC server and lists plugins for
// introspection.
func (s *Server) serve(svc registrar, plugins ...Plugin) {
	svc.Register(s.grpc)
	for _, p := range plugins {
		s.AddPlugin(p)
	}
}

// grpcPlugin is the plugin of the gRPC service id, which requires what
// requires names.
func grpcPlugin(id string, requires ...string) Plugin {
	return Plugin{Type: "io.containerd.grpc.v1", ID: id, Requires: requires}
}

// metadataPlugin is the metadata database, which serves the namespace,
// image and lease services; introspection lists it as containerd lists
// its bolt plugin.
var metadataPlugin = Plugin{Type: "io.containerd.metadata.v1", ID: "bolt", Requires: []string{"io.containerd.content.v1", "io.containerd.snapshotter.v1"}}

// snapshotsPlugins lists the snapshots service and every snapshotter for
// introspection, overlayfs too when it could not start.
func (s *Server) snapshotsPlugins() []Plugin {
	names := s.Store.DB.SnapshotterNames()
	if s.Store.OverlayUnavailable != nil && !slices.Contains(names, "overlayfs") {
		// Listed anyway, as containerd lists a snapshotter whose
		// init failed, so that `ctr plugins ls` says why.
		names = append(names, "overlayfs")
	}
	slices.Sort(names)
	ps := []Plugin{grpcPlugin("snapshots")}
	for _, name := range names {
		p := Plugin{
			Type:    "io.containerd.snapshotter.v1",
			ID:      name,
			Exports: map[string]string{"root": filepath.Join(s.Store.Root, "snapshots", name)},
		}
		if name == "overlayfs" && s.Store.OverlayUnavailable != nil {
			p.Exports, p.InitErr = nil, s.Store.OverlayUnavailable
		}
		ps = append(ps, p)
	}
	return ps
}
