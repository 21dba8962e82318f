package transfer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	transferapi "github.com/containerd/containerd/api/services/transfer/v1"
	"github.com/containerd/containerd/api/types"
	transfertypes "github.com/containerd/containerd/api/types/transfer"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/services/streaming"
	"github.com/strata-oci/strata/services/transfer"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := streaming.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRefused: what strata does not do, or does not do for this peer, is
// refused before any job runs, with the class and a message naming it.
func TestRefused(t *testing.T) {
	svc := transfer.New(transfer.Config{
		Streams: streaming.NewManager(),
		StartJob: func(call context.Context) (context.Context, context.CancelFunc, func(), error) {
			ctx, cancel := context.WithCancel(call)
			return ctx, cancel, func() {}, nil
		},
		PeerUID: func(context.Context) int64 { return 65534 },
	})
	reg := func(r *transfertypes.RegistryResolver) *transfertypes.OCIRegistry {
		return &transfertypes.OCIRegistry{Reference: "registry.example/x:1", Resolver: r}
	}
	store := &transfertypes.ImageStore{Name: "registry.example/x:1"}
	for _, tc := range []struct {
		name     string
		src, dst proto.Message
		class    error
		want     string
	}{
		{"hosts dir from a non-root peer", reg(&transfertypes.RegistryResolver{HostDir: "/etc/containerd/certs.d"}), store,
			errdefs.ErrPermissionDenied, "hosts directory /etc/containerd/certs.d"},
		{"extra headers", reg(&transfertypes.RegistryResolver{Headers: map[string]string{"X-Tenant": "a"}}), store,
			errdefs.ErrNotImplemented, "X-Tenant"},
		{"http debug", reg(&transfertypes.RegistryResolver{HttpDebug: transfertypes.HTTPDebug_DEBUG}), store,
			errdefs.ErrNotImplemented, "--http-dump"},
		{"default scheme", reg(&transfertypes.RegistryResolver{DefaultScheme: "ftp"}), store,
			errdefs.ErrInvalidArgument, `"ftp"`},
		{"auth stream not open", reg(&transfertypes.RegistryResolver{AuthStream: "creds-1"}), store,
			errdefs.ErrNotFound, `"creds-1"`},
		{"registry to registry", reg(nil), reg(nil),
			errdefs.ErrNotImplemented, "from OCIRegistry to OCIRegistry"},
		{"two unpacks", reg(nil), &transfertypes.ImageStore{Name: "x", Unpacks: []*transfertypes.UnpackConfiguration{{Snapshotter: "overlayfs"}, {Snapshotter: "native"}}},
			errdefs.ErrNotImplemented, "unpacks into 2"},
		{"manifest limit", reg(nil), &transfertypes.ImageStore{Name: "x", ManifestLimit: 2},
			errdefs.ErrNotImplemented, "manifest limit 2"},
		{"import with an index name", &transfertypes.ImageImportStream{Stream: "import-1"}, &transfertypes.ImageStore{Name: "idx"},
			errdefs.ErrNotImplemented, "--index-name idx"},
		{"import for another platform", &transfertypes.ImageImportStream{Stream: "import-1"},
			&transfertypes.ImageStore{Platforms: []*types.Platform{{OS: "plan9", Architecture: "mips"}}},
			errdefs.ErrNotImplemented, "import for platform plan9/mips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Transfer(context.Background(), &transferapi.TransferRequest{Source: anyOf(t, tc.src), Destination: anyOf(t, tc.dst)})
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Transfer = %v, want %v naming %s", err, tc.class, tc.want)
			}
		})
	}
	_, err := svc.Transfer(context.Background(), &transferapi.TransferRequest{Source: &anypb.Any{TypeUrl: "containerd.types.transfer.ContainerPath"}, Destination: anyOf(t, store)})
	if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "ContainerPath") {
		t.Fatalf("Transfer from a ContainerPath = %v", err)
	}
}
