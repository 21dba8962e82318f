package metadatatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"

	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
)

// RunLeases runs the lease manager suite.
func RunLeases(t *testing.T, open Open) {
	run(t, open, []test{
		{"CreateListDelete", testLeaseCRUD},
		{"GeneratedID", testLeaseGeneratedID},
		{"Invalid", testLeaseInvalid},
		{"Resources", testLeaseResources},
		{"ListFilters", testLeaseFilters},
	})
}

func testLeaseCRUD(ctx context.Context, t *testing.T, s Setup) {
	l, err := s.Leases.Create(ctx, leases.WithID("pull-1"), leases.WithLabels(map[string]string{"who": "me"}), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "pull-1" || l.CreatedAt.IsZero() || l.Labels[labels.GCExpire] == "" {
		t.Fatalf("Create = %+v", l)
	}
	if _, err := s.Leases.Create(ctx, leases.WithID("pull-1")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want already exists", err)
	}
	ls, err := s.Leases.List(ctx)
	if err != nil || len(ls) != 1 || ls[0].ID != "pull-1" || ls[0].Labels["who"] != "me" {
		t.Fatalf("List = %+v, %v", ls, err)
	}
	if ls, _ := s.Leases.List(namespaces.WithNamespace(ctx, "other")); len(ls) != 0 {
		t.Fatalf("other namespace lists %d leases", len(ls))
	}
	if err := s.Leases.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := s.Leases.Delete(ctx, l); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete = %v, want not found", err)
	}
}

func testLeaseGeneratedID(ctx context.Context, t *testing.T, s Setup) {
	a, err := s.Leases.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Leases.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.ID == b.ID {
		t.Fatalf("generated IDs %q and %q, want distinct non-empty", a.ID, b.ID)
	}
}

func testLeaseInvalid(ctx context.Context, t *testing.T, s Setup) {
	for _, tc := range []struct {
		name string
		opts []leases.Opt
	}{
		{"bad-id", []leases.Opt{leases.WithID("line\nbreak")}},
		{"long-id", []leases.Opt{leases.WithID(strings.Repeat("x", 1025))}},
		{"bad-expire", []leases.Opt{leases.WithLabels(map[string]string{labels.GCExpire: "tomorrow"})}},
	} {
		if _, err := s.Leases.Create(ctx, tc.opts...); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Create = %v, want invalid argument", tc.name, err)
		}
	}
	// ctr images mount leases the mount's path.
	if l, err := s.Leases.Create(ctx, leases.WithID("/mnt/image view")); err != nil || l.ID != "/mnt/image view" {
		t.Errorf("Create with a path as ID = %+v, %v", l, err)
	}

	l := leases.Lease{ID: "nothere"}
	if err := s.Leases.AddResource(ctx, l, leases.Resource{ID: digest.FromString("x").String(), Type: "content"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("AddResource to absent lease = %v, want not found", err)
	}
}

func testLeaseResources(ctx context.Context, t *testing.T, s Setup) {
	l, err := s.Leases.Create(ctx, leases.WithID("res"))
	if err != nil {
		t.Fatal(err)
	}
	rs := []leases.Resource{
		{ID: digest.FromString("a").String(), Type: "content"},
		{ID: "ingest-ref", Type: "ingests"},
		{ID: "snap-key", Type: "snapshots/overlayfs"},
	}
	for _, r := range rs {
		if err := s.Leases.AddResource(ctx, l, r); err != nil {
			t.Fatalf("AddResource(%+v) = %v", r, err)
		}
	}
	got, err := s.Leases.ListResources(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	key := func(rs []leases.Resource) string {
		var ss []string
		for _, r := range rs {
			ss = append(ss, r.Type+":"+r.ID)
		}
		sort.Strings(ss)
		return fmt.Sprint(ss)
	}
	if key(got) != key(rs) {
		t.Fatalf("ListResources = %s, want %s", key(got), key(rs))
	}
	if err := s.Leases.DeleteResource(ctx, l, rs[1]); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Leases.ListResources(ctx, l)
	if key(got) != key([]leases.Resource{rs[0], rs[2]}) {
		t.Fatalf("after DeleteResource: %s", key(got))
	}
	for _, bad := range []leases.Resource{{ID: "x", Type: "content"}, {ID: "x", Type: "bogus"}, {ID: "", Type: "ingests"}} {
		if err := s.Leases.AddResource(ctx, l, bad); err == nil {
			t.Errorf("AddResource(%+v) succeeded", bad)
		}
	}
}

func testLeaseFilters(ctx context.Context, t *testing.T, s Setup) {
	for i := 0; i < 3; i++ {
		if _, err := s.Leases.Create(ctx, leases.WithID(fmt.Sprintf("l%d", i)), leases.WithLabels(map[string]string{"n": fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		filters []string
		want    int
	}{
		{nil, 3}, {[]string{"id==l1"}, 1}, {[]string{"labels.n==2"}, 1}, {[]string{"id!=l1"}, 2}, {[]string{"id==l0", "labels.n==2"}, 2},
	} {
		ls, err := s.Leases.List(ctx, tc.filters...)
		if err != nil || len(ls) != tc.want {
			t.Errorf("List(%q) = %d leases, %v; want %d", tc.filters, len(ls), err, tc.want)
		}
	}
}

// RunNamespaces runs the namespace store suite.
func RunNamespaces(t *testing.T, open Open) {
	run(t, open, []test{{"Lifecycle", testNamespaceLifecycle}})
}

func testNamespaceLifecycle(ctx context.Context, t *testing.T, s Setup) {
	ns := s.Namespaces
	if err := ns.Create(ctx, "team-a", map[string]string{"owner": "a"}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Create(ctx, "team-a", nil); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want already exists", err)
	}
	for _, bad := range []string{"", "has space", "-lead", "a..b", string(make([]byte, 100))} {
		if err := ns.Create(ctx, bad, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%q) = %v, want invalid argument", bad, err)
		}
	}
	if err := ns.SetLabel(ctx, "team-a", "tier", "gold"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetLabel(ctx, "team-a", "owner", ""); err != nil {
		t.Fatal(err)
	}
	labels, err := ns.Labels(ctx, "team-a")
	if err != nil || fmt.Sprint(labels) != "map[tier:gold]" {
		t.Fatalf("Labels = %v, %v; want map[tier:gold]", labels, err)
	}
	// A namespace holding a blob cannot be removed, as containerd's; one
	// whose only leftovers are a lease and a partial download (a failed
	// pull leaves one) can, and the download's data goes with it (issue
	// 12, item 3).
	team := namespaces.WithNamespace(ctx, "team-a")
	blob := []byte("held by team-a")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(team, s.Content, "blob", bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	names, err := ns.List(ctx)
	if err != nil || fmt.Sprint(names) != "[team-a]" {
		t.Fatalf("List = %v, %v", names, err)
	}
	if err := ns.Delete(ctx, "team-a"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Delete(holding a blob) = %v, want failed precondition", err)
	}
	if err := s.Content.Delete(team, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leases.Create(team, leases.WithID("busy")); err != nil {
		t.Fatal(err)
	}
	w, err := s.Content.Writer(team, content.WithRef("partial"), content.WithDescriptor(ocispec.Descriptor{Digest: digest.FromString("never finished"), Size: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	// Not while a writer uses the download.
	if err := ns.Delete(ctx, "team-a"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Delete(an ingest in use) = %v, want failed precondition", err)
	}
	w.Close()
	if err := ns.Delete(ctx, "team-a"); err != nil {
		t.Fatalf("Delete(a lease and a partial download left) = %v", err)
	}
	if err := s.Content.Abort(team, "partial"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Abort of the deleted namespace's ingest = %v, want not found", err)
	}
	if err := ns.Create(ctx, "team-a", nil); err != nil {
		t.Fatal(err)
	}
	if sts, err := s.Content.ListStatuses(team); err != nil || len(sts) != 0 {
		t.Fatalf("ingests of a namespace made again = %+v, %v; want none", sts, err)
	}
	if _, err := s.Leases.List(team); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.Leases.List(team); len(ls) != 0 {
		t.Fatalf("leases of a namespace made again = %+v, want none", ls)
	}
	if err := ns.Delete(ctx, "team-a"); err != nil {
		t.Fatalf("Delete(empty) = %v", err)
	}
	// Labelling a namespace that does not exist creates it, as
	// containerd's namespaces service does.
	if err := ns.SetLabel(ctx, "team-b", "tier", "bronze"); err != nil {
		t.Fatalf("SetLabel(new namespace) = %v", err)
	}
	if labels, err := ns.Labels(ctx, "team-b"); err != nil || labels["tier"] != "bronze" {
		t.Fatalf("Labels(team-b) = %v, %v", labels, err)
	}
	if err := ns.Delete(ctx, "team-b"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Delete(ctx, "team-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete = %v, want not found", err)
	}
	if _, err := ns.Labels(ctx, "team-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Labels(deleted) = %v, want not found", err)
	}
}
