package server

import (
	"context"
	"strings"
	"testing"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/peer"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/peercred"
)

func asPeer(uid uint32) context.Context {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: peercred.AuthInfo{UID: uid, Known: true}})
}

// TestRootOnly: jobs that name paths or repair every namespace, and the
// diff service's mounts, are root's alone.
func TestRootOnly(t *testing.T) {
	nobody := asPeer(65534)
	withPath := []jobs.Request{
		{Import: &jobs.ImportRequest{Path: "/a.tar"}},
		{Export: &jobs.ExportRequest{Path: "/a.tar", Images: []string{"x"}}},
		{Pull: &jobs.PullRequest{Ref: "x", Registry: jobs.Registry{HostsDir: "/d"}}},
		{Push: &jobs.PushRequest{Ref: "x", Registry: jobs.Registry{HostsDir: "/d"}}},
	}
	for _, req := range withPath {
		if err := checkPaths(req, 0); err != nil {
			t.Fatalf("root: %v", err)
		}
		if err := checkPaths(req, 65534); !errdefs.IsPermissionDenied(err) {
			t.Fatalf("nobody, %s: %v", req.Kind(), err)
		}
	}
	for _, req := range []jobs.Request{{Import: &jobs.ImportRequest{}}, {Pull: &jobs.PullRequest{Ref: "x"}}, {GC: &jobs.GCRequest{}}} {
		if err := checkPaths(req, 65534); err != nil {
			t.Fatalf("nobody, %s without paths: %v", req.Kind(), err)
		}
	}

	// fsck --repair changes every namespace: root's only; a check
	// without repair is anyone's on the socket (issue 11, item 5).
	repair := jobs.Request{Fsck: &jobs.FsckRequest{Repair: true}}
	if err := checkRepair(repair, 0); err != nil {
		t.Fatalf("root, fsck --repair: %v", err)
	}
	for _, uid := range []int64{65534, -1} {
		err := checkRepair(repair, uid)
		if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), peercred.Name(uid)) || !strings.Contains(err.Error(), "sudo strata fsck --repair") {
			t.Fatalf("%s, fsck --repair: %v", peercred.Name(uid), err)
		}
	}
	// Dropping partial downloads, likewise.
	for _, req := range []jobs.Request{{GC: &jobs.GCRequest{Ingests: true}}, {GC: &jobs.GCRequest{MinFree: "10%"}}} {
		if err := checkRepair(req, 0); err != nil {
			t.Fatalf("root, %+v: %v", *req.GC, err)
		}
		err := checkRepair(req, 65534)
		if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), peercred.Name(65534)) || !strings.Contains(err.Error(), "partial downloads") {
			t.Fatalf("nobody, %+v: %v", *req.GC, err)
		}
	}
	for _, req := range []jobs.Request{{Fsck: &jobs.FsckRequest{}}, {GC: &jobs.GCRequest{}}, {Pull: &jobs.PullRequest{Ref: "x"}}} {
		if err := checkRepair(req, 65534); err != nil {
			t.Fatalf("nobody, %s: %v", req.Kind(), err)
		}
	}

	// The diff service mounts what it is given: root's only.
	ds := &diffService{}
	_, err := ds.Apply(nobody, &diffapi.ApplyRequest{
		Diff:   &types.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000", Size: 1},
		Mounts: []*types.Mount{{Type: "bind", Source: "/", Options: []string{"rbind"}}},
	})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("Apply onto / from nobody: %v", err)
	}
	_, err = ds.Diff(nobody, &diffapi.DiffRequest{Right: []*types.Mount{{Type: "bind", Source: "/etc", Options: []string{"rbind"}}}})
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("Diff of /etc from nobody: %v", err)
	}
}
