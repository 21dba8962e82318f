package jobs

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/server/peercred"
)

// TestRootOnly: jobs that name paths or repair every namespace are root's
// alone.
func TestRootOnly(t *testing.T) {
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

}
