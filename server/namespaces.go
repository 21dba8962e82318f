package server

import (
	"context"
	"fmt"
	"log/slog"

	apievents "github.com/containerd/containerd/api/events"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/filters"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/namespaces"
)

// registerNamespaces serves containerd.services.namespaces.v1 and lists the
// metadata database for introspection.
func (s *Server) registerNamespaces() {
	namespacesapi.RegisterNamespacesServer(s.GRPC(), &namespacesService{store: s.Store.DB.Namespaces(), events: s.events, log: s.Log})
	// The metadata database serves the namespace, image and lease
	// services; introspection lists it as containerd lists its bolt plugin.
	s.AddPlugin(Plugin{Type: "io.containerd.metadata.v1", ID: "bolt", Requires: []string{"io.containerd.content.v1", "io.containerd.snapshotter.v1"}})
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "namespaces", Requires: []string{"io.containerd.metadata.v1"}})
}

// namespacesService serves containerd's namespaces API over the metadata
// database. Namespaces are global: its calls need no namespace header.
type namespacesService struct {
	namespacesapi.UnimplementedNamespacesServer
	store  namespaces.Store
	events events.Publisher
	log    *slog.Logger
}

func (n *namespacesService) get(ctx context.Context, name string) (*namespacesapi.Namespace, error) {
	labels, err := n.store.Labels(ctx, name)
	if err != nil {
		return nil, err
	}
	return &namespacesapi.Namespace{Name: name, Labels: labels}, nil
}

func (n *namespacesService) Get(ctx context.Context, req *namespacesapi.GetNamespaceRequest) (*namespacesapi.GetNamespaceResponse, error) {
	ns, err := n.get(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	return &namespacesapi.GetNamespaceResponse{Namespace: ns}, nil
}

// namespaceFields lets List filters match a namespace's name and labels.
func namespaceFields(ns *namespacesapi.Namespace) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "name":
			return ns.Name, true
		case "labels":
			return filters.LabelField(ns.Labels, fieldpath)
		}
		return "", false
	})
}

func (n *namespacesService) List(ctx context.Context, req *namespacesapi.ListNamespacesRequest) (*namespacesapi.ListNamespacesResponse, error) {
	var fs []string
	if req.Filter != "" {
		fs = []string{req.Filter}
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	names, err := n.store.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &namespacesapi.ListNamespacesResponse{}
	for _, name := range names {
		ns, err := n.get(ctx, name)
		if errdefs.IsNotFound(err) {
			continue // deleted since List
		}
		if err != nil {
			return nil, err
		}
		if filter.Match(namespaceFields(ns)) {
			resp.Namespaces = append(resp.Namespaces, ns)
		}
	}
	return resp, nil
}

func (n *namespacesService) Create(ctx context.Context, req *namespacesapi.CreateNamespaceRequest) (*namespacesapi.CreateNamespaceResponse, error) {
	if req.Namespace == nil {
		return nil, fmt.Errorf("create namespace: namespace is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := n.store.Create(ctx, req.Namespace.Name, req.Namespace.Labels); err != nil {
		return nil, err
	}
	ns, err := n.get(ctx, req.Namespace.Name)
	if err != nil {
		return nil, err
	}
	events.Tell(ctx, n.events, n.log, events.TopicNamespaceCreate, &apievents.NamespaceCreate{Name: ns.Name, Labels: ns.Labels})
	return &namespacesapi.CreateNamespaceResponse{Namespace: ns}, nil
}

// Update changes labels only, as containerd's does: "labels.<key>" sets or
// (with no value) removes one, "labels" replaces them all, and no field
// mask replaces them all too. The name cannot change.
func (n *namespacesService) Update(ctx context.Context, req *namespacesapi.UpdateNamespaceRequest) (*namespacesapi.UpdateNamespaceResponse, error) {
	if req.Namespace == nil {
		return nil, fmt.Errorf("update namespace: namespace is required: %w", errdefs.ErrInvalidArgument)
	}
	name := req.Namespace.Name
	paths := req.UpdateMask.GetPaths()
	if len(paths) == 0 {
		paths = []string{"labels"}
	}
	// A namespace that does not exist is created by its first label, as
	// containerd's namespaces service does.
	current, err := n.store.Labels(ctx, name)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	next, err := lbl.Update(current, req.Namespace.Labels, paths)
	if err != nil {
		return nil, fmt.Errorf("update namespace %q: %w", name, err)
	}
	for k := range current {
		if _, ok := next[k]; !ok {
			if err := n.store.SetLabel(ctx, name, k, ""); err != nil {
				return nil, err
			}
		}
	}
	for k, v := range next {
		if current[k] != v {
			if err := n.store.SetLabel(ctx, name, k, v); err != nil {
				return nil, err
			}
		}
	}
	ns, err := n.get(ctx, name)
	if err != nil {
		return nil, err
	}
	events.Tell(ctx, n.events, n.log, events.TopicNamespaceUpdate, &apievents.NamespaceUpdate{Name: ns.Name, Labels: ns.Labels})
	return &namespacesapi.UpdateNamespaceResponse{Namespace: ns}, nil
}

// Delete fails with FailedPrecondition while the namespace holds anything.
func (n *namespacesService) Delete(ctx context.Context, req *namespacesapi.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	if err := n.store.Delete(ctx, req.Name); err != nil {
		return nil, err
	}
	events.Tell(ctx, n.events, n.log, events.TopicNamespaceDelete, &apievents.NamespaceDelete{Name: req.Name})
	return &emptypb.Empty{}, nil
}
