package containerd

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"github.com/containerd/containerd/v2/core/content"
	contentproxy "github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/content/testsuite"
	"github.com/containerd/containerd/v2/core/leases"
	leasesproxy "github.com/containerd/containerd/v2/core/leases/proxy"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// contentStore returns containerd's StoreInitFn over a stratad with the
// content sharing policy given. Contexts the suite derives get namespaces
// of their own and a lease each, as containerd's integration tests give
// them; a shared one is labelled containerd.io/namespace.shareable=true
// through the namespaces service (which creates the namespace, as
// containerd's does).
func contentStore(policy string) testsuite.StoreInitFn {
	return func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		d, err := startStratad(root, "native", policy)
		if err != nil {
			return nil, nil, nil, err
		}
		var (
			count atomic.Uint64
			name  = testsuite.Name(ctx)
			lm    = leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(d.conn))
			nsc   = namespacesapi.NewNamespacesClient(d.conn)
		)
		wrap := func(ctx context.Context, sharedNS bool) (context.Context, func(context.Context) error, error) {
			ns := fmt.Sprintf("%s-n%d", name, count.Add(1))
			ctx = namespaces.WithNamespace(ctx, ns)
			if sharedNS {
				_, err := nsc.Update(ctx, &namespacesapi.UpdateNamespaceRequest{
					Namespace:  &namespacesapi.Namespace{Name: ns, Labels: map[string]string{"containerd.io/namespace.shareable": "true"}},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels.containerd.io/namespace.shareable"}},
				})
				if err != nil {
					return nil, nil, fmt.Errorf("label namespace %s shareable: %w", ns, err)
				}
			}
			l, err := lm.Create(ctx, leases.WithRandomID())
			if err != nil {
				return nil, nil, err
			}
			return leases.WithLease(ctx, l.ID), func(ctx context.Context) error {
				return lm.Delete(ctx, l)
			}, nil
		}
		ctx = testsuite.SetContextWrapper(namespaces.WithNamespace(ctx, "testsuite"), wrap)
		return ctx, contentproxy.NewContentStore(d.conn), d.stop, nil
	}
}

func TestContentSuite(t *testing.T) {
	requireRoot(t)
	t.Run("shared", func(t *testing.T) {
		testsuite.ContentSuite(t, "stratad", contentStore("shared"))
		testsuite.ContentCrossNSSharedSuite(t, "stratad", contentStore("shared"))
	})
	t.Run("isolated", func(t *testing.T) {
		testsuite.ContentSuite(t, "stratad", contentStore("isolated"))
		testsuite.ContentCrossNSIsolatedSuite(t, "stratad", contentStore("isolated"))
		testsuite.ContentSharedNSIsolatedSuite(t, "stratad", contentStore("isolated"))
	})
}
