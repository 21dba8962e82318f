// Package namespaces serves containerd.services.namespaces.v1 over
// strata's namespaces (namespaces.Store): names and labels, created,
// updated and deleted.
package namespaces

import (
	"context"
	"fmt"
	"log/slog"

	apievents "github.com/containerd/containerd/api/events"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/filters"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/namespaces"
)

// Service serves containerd's namespaces API over the metadata
// database. Namespaces are global: its calls need no namespace header.
type Service struct {
	namespacesapi.UnimplementedNamespacesServer
	store  namespaces.Store
	events events.Publisher
	log    *slog.Logger
}

// New returns the service over store, telling ev about creates, updates
// and deletes (nil: no events) and log about events it could not publish
// (nil: discarded).
func New(store namespaces.Store, ev events.Publisher, log *slog.Logger) *Service {
	return &Service{store: store, events: ev, log: log}
}

// Register serves the service on g.
func (n *Service) Register(g *grpc.Server) { namespacesapi.RegisterNamespacesServer(g, n) }

func (n *Service) get(ctx context.Context, name string) (*namespacesapi.Namespace, error) {
	labels, err := n.store.Labels(ctx, name)
	if err != nil {
		return nil, err
	}
	return &namespacesapi.Namespace{Name: name, Labels: labels}, nil
}

func (n *Service) Get(ctx context.Context, req *namespacesapi.GetNamespaceRequest) (*namespacesapi.GetNamespaceResponse, error) {
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

func (n *Service) List(ctx context.Context, req *namespacesapi.ListNamespacesRequest) (*namespacesapi.ListNamespacesResponse, error) {
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

func (n *Service) Create(ctx context.Context, req *namespacesapi.CreateNamespaceRequest) (*namespacesapi.CreateNamespaceResponse, error) {
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
func (n *Service) Update(ctx context.Context, req *namespacesapi.UpdateNamespaceRequest) (*namespacesapi.UpdateNamespaceResponse, error) {
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
func (n *Service) Delete(ctx context.Context, req *namespacesapi.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	if err := n.store.Delete(ctx, req.Name); err != nil {
		return nil, err
	}
	events.Tell(ctx, n.events, n.log, events.TopicNamespaceDelete, &apievents.NamespaceDelete{Name: req.Name})
	return &emptypb.Empty{}, nil
}
