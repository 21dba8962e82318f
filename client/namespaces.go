// Package client implements strata's domain interfaces over the daemon's
// gRPC API (containerd's services v1), so code written against a store works
// the same against stratad's socket. gRPC errors come back as errdefs
// classes (errgrpc.ToNative); the namespace of the context travels in the
// containerd-namespace header.
package client

import (
	"context"
	"fmt"

	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/namespaces"
)

// NamespaceStore is a namespaces.Store over the namespaces service.
type NamespaceStore struct {
	client namespacesapi.NamespacesClient
}

var _ namespaces.Store = (*NamespaceStore)(nil)

// NewNamespaceStore returns a namespace store that calls the daemon on conn.
func NewNamespaceStore(conn grpc.ClientConnInterface) *NamespaceStore {
	return &NamespaceStore{client: namespacesapi.NewNamespacesClient(conn)}
}

// withNamespaceHeader returns ctx with the namespace it carries (if any)
// in the outgoing gRPC metadata, replacing one set there before.
func withNamespaceHeader(ctx context.Context) context.Context {
	ns, ok := namespaces.Namespace(ctx)
	if !ok {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(namespaces.GRPCHeader, ns)
	return metadata.NewOutgoingContext(ctx, md)
}

// Create makes namespace name. It returns errdefs.ErrAlreadyExists when it
// exists and errdefs.ErrInvalidArgument for a bad name or labels.
func (s *NamespaceStore) Create(ctx context.Context, name string, labels map[string]string) error {
	_, err := s.client.Create(ctx, &namespacesapi.CreateNamespaceRequest{Namespace: &namespacesapi.Namespace{Name: name, Labels: labels}})
	if err != nil {
		return fmt.Errorf("create namespace %q: %w", name, errgrpc.ToNative(err))
	}
	return nil
}

// Labels returns the labels of namespace name, or errdefs.ErrNotFound.
func (s *NamespaceStore) Labels(ctx context.Context, name string) (map[string]string, error) {
	resp, err := s.client.Get(ctx, &namespacesapi.GetNamespaceRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("get namespace %q: %w", name, errgrpc.ToNative(err))
	}
	return resp.Namespace.GetLabels(), nil
}

// SetLabel sets one label of namespace name; an empty value removes it.
func (s *NamespaceStore) SetLabel(ctx context.Context, name, key, value string) error {
	if key == "" {
		// "labels." would name no label; the service would refuse it too.
		return fmt.Errorf("namespace %q: label key must not be empty: %w", name, errdefs.ErrInvalidArgument)
	}
	req := &namespacesapi.UpdateNamespaceRequest{
		Namespace:  &namespacesapi.Namespace{Name: name},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + key}},
	}
	if value != "" {
		req.Namespace.Labels = map[string]string{key: value}
	}
	if _, err := s.client.Update(ctx, req); err != nil {
		return fmt.Errorf("label namespace %q: %w", name, errgrpc.ToNative(err))
	}
	return nil
}

// List returns the names of all namespaces.
func (s *NamespaceStore) List(ctx context.Context) ([]string, error) {
	resp, err := s.client.List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", errgrpc.ToNative(err))
	}
	var out []string
	for _, ns := range resp.Namespaces {
		out = append(out, ns.Name)
	}
	return out, nil
}

// Delete removes namespace name. It returns errdefs.ErrNotFound when it
// does not exist and errdefs.ErrFailedPrecondition while it holds anything.
func (s *NamespaceStore) Delete(ctx context.Context, name string) error {
	if _, err := s.client.Delete(ctx, &namespacesapi.DeleteNamespaceRequest{Name: name}); err != nil {
		return fmt.Errorf("delete namespace %q: %w", name, errgrpc.ToNative(err))
	}
	return nil
}
