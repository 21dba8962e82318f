package images_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

func TestImagesWithCtr(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	manifest, blobs := d.ImageFixture(t, "default", "fixture")
	store := client.NewImageStore(d.Conn)
	const name = "registry.test/strata/hello:1"
	if _, err := store.Create(ctx, images.Image{Name: name, Target: manifest}); err != nil {
		t.Fatal(err)
	}
	// From here on only the image holds the blobs.
	if err := d.Store.DB.Leases().Delete(ctx, leases.Lease{ID: "fixture"}, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}

	out := d.Ctr(t, "default", "images", "ls")
	row := servertest.CtrRowsByFirst(t, out, "REF")[name]
	platform := images.FormatPlatform(images.DefaultPlatform())
	// REF TYPE DIGEST SIZE (two words) PLATFORMS LABELS
	if len(row) != 6 || row[0] != manifest.MediaType || row[1] != manifest.Digest.String() || row[4] != platform || row[5] != "-" {
		t.Fatalf("ctr images ls: %s = %q, want %s %s <size> %s -\n%s", name, row, manifest.MediaType, manifest.Digest, platform, out)
	}
	out = d.Ctr(t, "default", "images", "check")
	row = servertest.CtrRowsByFirst(t, out, "REF")[name]
	// ctr counts the manifest's config and layers, and finds no snapshot.
	want := fmt.Sprintf("(%d/%d)", len(blobs)-1, len(blobs)-1)
	if len(row) != 8 || row[2] != "complete" || row[3] != want || row[7] != "false" {
		t.Fatalf("ctr images check: %s = %q, want complete %s, not unpacked\n%s", name, row, want, out)
	}

	const tag = "registry.test/strata/hello:2"
	if out := d.Ctr(t, "default", "images", "tag", name, tag); strings.TrimSpace(out) != tag {
		t.Fatalf("ctr images tag printed %q, want %s", out, tag)
	}
	d.Ctr(t, "default", "images", "label", tag, "team=infra", "tier=gold")
	d.Ctr(t, "default", "images", "label", tag, "tier=")
	tagged, err := store.Get(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if tagged.Target.Digest != manifest.Digest || fmt.Sprint(tagged.Labels) != "map[team:infra]" {
		t.Fatalf("after ctr images tag and label: %s = %s %v, want %s map[team:infra]", tag, tagged.Target.Digest, tagged.Labels, manifest.Digest)
	}
	rows := servertest.CtrRowsByFirst(t, d.Ctr(t, "default", "images", "ls"), "REF")
	if r := rows[tag]; len(r) != 6 || r[1] != manifest.Digest.String() || r[5] != "team=infra" {
		t.Fatalf("ctr images ls: %s = %q, want digest %s and label team=infra", tag, r, manifest.Digest)
	}
	if out := d.Ctr(t, "default", "images", "ls", "-q", "labels.team==infra"); strings.TrimSpace(out) != tag {
		t.Fatalf("ctr images ls -q labels.team==infra = %q, want %s", out, tag)
	}

	// Removing one name leaves the blobs to the other; removing the last
	// with --sync collects them before ctr returns.
	d.Ctr(t, "default", "images", "rm", "--sync", tag)
	cs := d.Store.DB.ContentStore()
	for _, b := range blobs {
		if _, err := cs.Info(ctx, b.Digest); err != nil {
			t.Fatalf("blob %s after removing %s: %v", b.Digest, tag, err)
		}
	}
	if out := d.Ctr(t, "default", "images", "rm", "--sync", name); strings.TrimSpace(out) != name {
		t.Fatalf("ctr images rm printed %q, want %s", out, name)
	}
	for _, b := range blobs {
		if _, err := cs.Info(ctx, b.Digest); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("blob %s after ctr images rm --sync: %v, want not found", b.Digest, err)
		}
	}
	if out := d.Ctr(t, "default", "images", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("ctr images ls -q after rm = %q, want none", out)
	}
}

func TestImagesService(t *testing.T) {
	d := servertest.Start(t)
	ic := imagesapi.NewImagesClient(d.Conn)
	ctx := servertest.Context(context.Background(), "default")
	target := func(s string) *types.Descriptor {
		return &types.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(s).String(), Size: int64(len(s))}
	}
	created, err := ic.Create(ctx, &imagesapi.CreateImageRequest{Image: &imagesapi.Image{
		Name: "x:1", Target: target("a"), Labels: map[string]string{"a": "1", "b": "2"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if created.Image.CreatedAt == nil || !created.Image.CreatedAt.AsTime().Equal(created.Image.UpdatedAt.AsTime()) {
		t.Fatalf("Create times = %v, %v", created.Image.CreatedAt, created.Image.UpdatedAt)
	}
	for _, tc := range []struct {
		name   string
		image  *imagesapi.Image
		paths  []string
		target string
		labels string
	}{
		{"label", &imagesapi.Image{Name: "x:1", Labels: map[string]string{"a": "9"}}, []string{"labels.a"}, "a", "map[a:9 b:2]"},
		{"target", &imagesapi.Image{Name: "x:1", Target: target("b")}, []string{"target"}, "b", "map[a:9 b:2]"},
		{"no-mask", &imagesapi.Image{Name: "x:1", Target: target("c"), Labels: map[string]string{"c": "3"}}, nil, "c", "map[c:3]"},
	} {
		req := &imagesapi.UpdateImageRequest{Image: tc.image}
		if tc.paths != nil {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: tc.paths}
		}
		up, err := ic.Update(ctx, req)
		if err != nil {
			t.Fatalf("%s: Update = %v", tc.name, err)
		}
		if up.Image.Target.Digest != target(tc.target).Digest || fmt.Sprint(up.Image.Labels) != tc.labels {
			t.Errorf("%s: Update = %s %v, want target %s labels %s", tc.name, up.Image.Target.Digest, up.Image.Labels, tc.target, tc.labels)
		}
	}
	list, err := ic.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{"labels.c==3"}})
	if err != nil || len(list.Images) != 1 || list.Images[0].Name != "x:1" {
		t.Fatalf("List(labels.c==3) = %v, %v", list, err)
	}
	// A delete naming another target finds nothing to delete.
	_, err = ic.Delete(ctx, &imagesapi.DeleteImageRequest{Name: "x:1", Target: target("a")})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Delete(wrong target) = %v, want NotFound", err)
	}
	if _, err := ic.Delete(ctx, &imagesapi.DeleteImageRequest{Name: "x:1", Target: target("c"), Sync: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"get-deleted", func() error {
			_, err := ic.Get(ctx, &imagesapi.GetImageRequest{Name: "x:1"})
			return err
		}, codes.NotFound},
		{"create-no-name", func() error {
			_, err := ic.Create(ctx, &imagesapi.CreateImageRequest{Image: &imagesapi.Image{Target: target("a")}})
			return err
		}, codes.InvalidArgument},
		{"create-no-image", func() error {
			_, err := ic.Create(ctx, &imagesapi.CreateImageRequest{})
			return err
		}, codes.InvalidArgument},
		{"update-deleted", func() error {
			_, err := ic.Update(ctx, &imagesapi.UpdateImageRequest{Image: &imagesapi.Image{Name: "x:1"}})
			return err
		}, codes.NotFound},
		{"list-no-namespace", func() error {
			_, err := ic.List(context.Background(), &imagesapi.ListImagesRequest{})
			return err
		}, codes.FailedPrecondition},
		{"bad-filter", func() error {
			_, err := ic.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{"name=="}})
			return err
		}, codes.InvalidArgument},
	} {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
