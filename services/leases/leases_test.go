package leases_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

func TestLeasesWithCtr(t *testing.T) {
	d := servertest.Start(t)
	if out := d.Ctr(t, "default", "leases", "create", "--id", "pull-1", "--expires", "1h", "who=me"); strings.TrimSpace(out) != "pull-1" {
		t.Fatalf("ctr leases create printed %q, want pull-1", out)
	}
	generated := strings.TrimSpace(d.Ctr(t, "default", "leases", "create", "--expires", "0"))
	if generated == "" || generated == "pull-1" {
		t.Fatalf("ctr leases create without --id printed %q", generated)
	}
	out := d.Ctr(t, "default", "leases", "ls")
	rows := servertest.CtrRowsByFirst(t, out, "ID")
	pull := rows["pull-1"]
	if len(pull) != 2 {
		t.Fatalf("ctr leases ls: row pull-1 = %q, want created-at and labels\n%s", pull, out)
	}
	created, err := time.Parse(time.RFC3339, pull[0])
	if err != nil || time.Since(created) > time.Hour || time.Until(created) > time.Minute {
		t.Errorf("ctr leases ls: pull-1 created at %q (%v), want about now", pull[0], err)
	}
	var expire time.Time
	for _, kv := range strings.Split(pull[1], ",") {
		if v, ok := strings.CutPrefix(kv, labels.GCExpire+"="); ok {
			expire, err = time.Parse(time.RFC3339Nano, v)
			if err != nil {
				t.Errorf("ctr leases ls: pull-1 expiry %q: %v", v, err)
			}
		}
	}
	if !strings.Contains(pull[1], "who=me") || expire.Before(created.Add(59*time.Minute)) || expire.After(created.Add(61*time.Minute)) {
		t.Errorf("ctr leases ls: pull-1 labels %q, want who=me and an expiry one hour after %v", pull[1], created)
	}
	if gen := rows[generated]; len(gen) != 2 || gen[1] != "-" {
		t.Errorf("ctr leases ls: %s = %q, want no labels (--expires 0)", generated, gen)
	}
	if out := d.Ctr(t, "other", "leases", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("ctr -n other leases ls -q = %q, want none", out)
	}

	d.Ctr(t, "default", "leases", "rm", "pull-1", generated)
	if out := d.Ctr(t, "default", "leases", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("ctr leases ls -q after rm = %q, want none", out)
	}
	if out, err := d.CtrResult("default", "leases", "rm", "pull-1"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("second ctr leases rm = %v:\n%s", err, out)
	}
}

// TestLeasesSyncDelete checks that a blob only a lease held is gone once
// ctr leases rm --sync returns.
func TestLeasesSyncDelete(t *testing.T) {
	d := servertest.Start(t)
	d.Ctr(t, "default", "leases", "create", "--id", "hold")
	ctx := leases.WithLease(namespaces.WithNamespace(context.Background(), "default"), "hold")
	cs := d.Store.DB.ContentStore()
	blob := []byte("held only by a lease")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(ctx, cs, "held", bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}

	lc := leasesapi.NewLeasesClient(d.Conn)
	rs, err := lc.ListResources(servertest.Context(ctx, "default"), &leasesapi.ListResourcesRequest{ID: "hold"})
	if err != nil || len(rs.Resources) != 1 || rs.Resources[0].ID != desc.Digest.String() || rs.Resources[0].Type != "content" {
		t.Fatalf("ListResources(hold) = %v, %v; want the blob", rs, err)
	}
	if _, err := cs.Info(ctx, desc.Digest); err != nil {
		t.Fatalf("Info before lease removal: %v", err)
	}
	d.Ctr(t, "default", "leases", "rm", "--sync", "hold")
	if _, err := cs.Info(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Info after ctr leases rm --sync = %v, want not found", err)
	}
}

func TestLeasesResources(t *testing.T) {
	d := servertest.Start(t)
	lc := leasesapi.NewLeasesClient(d.Conn)
	ctx := servertest.Context(context.Background(), "default")
	if _, err := lc.Create(ctx, &leasesapi.CreateRequest{ID: "r"}); err != nil {
		t.Fatal(err)
	}
	res := &leasesapi.Resource{ID: "snap-key", Type: "snapshots/overlayfs"}
	if _, err := lc.AddResource(ctx, &leasesapi.AddResourceRequest{ID: "r", Resource: res}); err != nil {
		t.Fatal(err)
	}
	rs, err := lc.ListResources(ctx, &leasesapi.ListResourcesRequest{ID: "r"})
	if err != nil || len(rs.Resources) != 1 || rs.Resources[0].ID != res.ID || rs.Resources[0].Type != res.Type {
		t.Fatalf("ListResources = %v, %v", rs, err)
	}
	if _, err := lc.DeleteResource(ctx, &leasesapi.DeleteResourceRequest{ID: "r", Resource: res}); err != nil {
		t.Fatal(err)
	}
	if rs, err := lc.ListResources(ctx, &leasesapi.ListResourcesRequest{ID: "r"}); err != nil || len(rs.Resources) != 0 {
		t.Fatalf("ListResources after DeleteResource = %v, %v", rs, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"no-resource", func() error {
			_, err := lc.AddResource(ctx, &leasesapi.AddResourceRequest{ID: "r"})
			return err
		}, codes.InvalidArgument},
		{"absent-lease", func() error {
			_, err := lc.AddResource(ctx, &leasesapi.AddResourceRequest{ID: "nothere", Resource: res})
			return err
		}, codes.NotFound},
		{"no-namespace", func() error {
			_, err := lc.List(context.Background(), &leasesapi.ListRequest{})
			return err
		}, codes.FailedPrecondition},
		{"bad-expiry", func() error {
			_, err := lc.Create(ctx, &leasesapi.CreateRequest{Labels: map[string]string{labels.GCExpire: "soon"}})
			return err
		}, codes.InvalidArgument},
	} {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
