package namespaces_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

func TestNamespacesWithCtr(t *testing.T) {
	d := servertest.Start(t)
	d.Ctr(t, "default", "namespaces", "create", "team-a", "owner=a")
	d.Ctr(t, "default", "namespaces", "label", "team-a", "tier=gold")
	out := d.Ctr(t, "default", "namespaces", "ls")
	rows := servertest.CtrRowsByFirst(t, out, "NAME")
	if got := strings.Join(rows["team-a"], " "); got != "owner=a,tier=gold" {
		t.Fatalf("ctr namespaces ls: team-a labels %q, want owner=a,tier=gold\n%s", got, out)
	}
	if out, err := d.CtrResult("default", "namespaces", "create", "team-a"); err == nil {
		t.Fatalf("ctr namespaces create of an existing namespace succeeded:\n%s", out)
	} else if !strings.Contains(out, "already exists") {
		t.Fatalf("ctr namespaces create of an existing namespace:\n%s", out)
	}

	// A namespace holding a blob cannot be removed; one holding only a
	// lease can, as containerd's (issue 12, item 3).
	d.Ctr(t, "team-a", "leases", "create", "--id", "busy")
	data := []byte("team-a's blob")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(namespaces.WithNamespace(context.Background(), "team-a"), d.Store.DB.ContentStore(), "b", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	out, err := d.CtrResult("default", "namespaces", "rm", "team-a")
	if err == nil || !strings.Contains(out, "blobs") || !strings.Contains(out, "failed precondition") {
		t.Fatalf("ctr namespaces rm of a namespace with a blob = %v:\n%s", err, out)
	}
	d.Ctr(t, "team-a", "content", "rm", desc.Digest.String())
	if out := d.Ctr(t, "default", "namespaces", "rm", "team-a"); strings.TrimSpace(out) != "team-a" {
		t.Fatalf("ctr namespaces rm printed %q, want team-a", out)
	}
	if out := d.Ctr(t, "default", "namespaces", "ls", "-q"); strings.Contains(out, "team-a") {
		t.Fatalf("ctr namespaces ls -q after rm:\n%s", out)
	}
}

func TestMetadataPluginsWithCtr(t *testing.T) {
	d := servertest.Start(t)
	out := d.Ctr(t, "default", "plugins", "ls")
	for _, want := range []string{
		"io.containerd.metadata.v1 bolt - ok",
		"io.containerd.lease.v1 manager - ok",
		"io.containerd.grpc.v1 namespaces - ok",
		"io.containerd.grpc.v1 images - ok",
		"io.containerd.grpc.v1 leases - ok",
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Join(strings.Fields(line), " ") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("ctr plugins ls has no line %q:\n%s", want, out)
		}
	}
}

func TestNamespacesUpdate(t *testing.T) {
	d := servertest.Start(t)
	ctx := context.Background()
	nsc := namespacesapi.NewNamespacesClient(d.Conn)
	if _, err := nsc.Create(ctx, &namespacesapi.CreateNamespaceRequest{Namespace: &namespacesapi.Namespace{
		Name: "n1", Labels: map[string]string{"a": "1", "b": "2"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		paths  []string
		want   string
	}{
		{"set-one", map[string]string{"a": "9", "b": "ignored"}, []string{"labels.a"}, "map[a:9 b:2]"},
		{"remove-one", nil, []string{"labels.b"}, "map[a:9]"},
		{"replace-all", map[string]string{"c": "3"}, nil, "map[c:3]"},
		{"labels", map[string]string{"d": "4"}, []string{"labels"}, "map[d:4]"},
	} {
		req := &namespacesapi.UpdateNamespaceRequest{Namespace: &namespacesapi.Namespace{Name: "n1", Labels: tc.labels}}
		if tc.paths != nil {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: tc.paths}
		}
		resp, err := nsc.Update(ctx, req)
		if err != nil {
			t.Fatalf("%s: Update = %v", tc.name, err)
		}
		if got := fmt.Sprint(resp.Namespace.Labels); got != tc.want {
			t.Errorf("%s: Update labels = %s, want %s", tc.name, got, tc.want)
		}
		get, err := nsc.Get(ctx, &namespacesapi.GetNamespaceRequest{Name: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(get.Namespace.Labels); got != tc.want {
			t.Errorf("%s: Get labels = %s, want %s", tc.name, got, tc.want)
		}
	}
	_, err := nsc.Update(ctx, &namespacesapi.UpdateNamespaceRequest{
		Namespace: &namespacesapi.Namespace{Name: "n1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Update(name) = %v, want InvalidArgument", err)
	}
	_, err = nsc.Get(ctx, &namespacesapi.GetNamespaceRequest{Name: "absent"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Get(absent) = %v, want NotFound", err)
	}
	list, err := nsc.List(ctx, &namespacesapi.ListNamespacesRequest{Filter: "labels.d==4"})
	if err != nil || len(list.Namespaces) != 1 || list.Namespaces[0].Name != "n1" {
		t.Errorf("List(labels.d==4) = %v, %v; want n1", list, err)
	}
}
