package metadatatest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/namespaces"
)

// RunImages runs the image store suite.
func RunImages(t *testing.T, open Open) {
	run(t, open, []test{
		{"CreateGet", testImageCreateGet},
		{"Update", testImageUpdate},
		{"ListFilters", testImageList},
		{"Delete", testImageDelete},
		{"Invalid", testImageInvalid},
		{"NamespaceIsolation", testImageNamespaces},
	})
}

func target(s string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(s), Size: int64(len(s))}
}

func testImageCreateGet(ctx context.Context, t *testing.T, s Setup) {
	img := images.Image{Name: "docker.io/library/alpine:3.20", Target: target("a"), Labels: map[string]string{"k": "v"}}
	img.Target.Annotations = map[string]string{"org.opencontainers.image.ref.name": "3.20"}
	created, err := s.Images.Create(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Fatalf("Create times = %v, %v", created.CreatedAt, created.UpdatedAt)
	}
	got, err := s.Images.Get(ctx, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != img.Name || got.Target.Digest != img.Target.Digest || got.Target.MediaType != img.Target.MediaType ||
		got.Target.Size != img.Target.Size || got.Labels["k"] != "v" || got.Target.Annotations["org.opencontainers.image.ref.name"] != "3.20" ||
		!got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("Get = %+v, want %+v", got, created)
	}
	_, err = s.Images.Create(ctx, img)
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want already exists", err)
	}
	_, err = s.Images.Get(ctx, "docker.io/library/nothere:1")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want not found", err)
	}
}

func testImageUpdate(ctx context.Context, t *testing.T, s Setup) {
	img := images.Image{Name: "x:1", Target: target("a"), Labels: map[string]string{"a": "1", "b": "2"}}
	if _, err := s.Images.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	up, err := s.Images.Update(ctx, images.Image{Name: "x:1", Labels: map[string]string{"a": "9"}}, "labels.a")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(up.Labels) != "map[a:9 b:2]" || up.Target.Digest != img.Target.Digest {
		t.Fatalf("Update(labels.a) = %v %s", up.Labels, up.Target.Digest)
	}
	up, err = s.Images.Update(ctx, images.Image{Name: "x:1", Target: target("b")}, "target")
	if err != nil {
		t.Fatal(err)
	}
	if up.Target.Digest != target("b").Digest || fmt.Sprint(up.Labels) != "map[a:9 b:2]" {
		t.Fatalf("Update(target) = %+v", up)
	}
	if !up.UpdatedAt.After(up.CreatedAt) && !up.UpdatedAt.Equal(up.CreatedAt) {
		t.Fatalf("UpdatedAt %v before CreatedAt %v", up.UpdatedAt, up.CreatedAt)
	}
	// Without field paths both labels and target are replaced.
	up, err = s.Images.Update(ctx, images.Image{Name: "x:1", Target: target("c")})
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Labels) != 0 || up.Target.Digest != target("c").Digest {
		t.Fatalf("Update() = %+v, want no labels and target c", up)
	}
	if _, err := s.Images.Update(ctx, images.Image{Name: "x:1"}, "name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Update(name) = %v, want invalid argument", err)
	}
	if _, err := s.Images.Update(ctx, images.Image{Name: "x:1"}, "target"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Update(empty target) = %v, want invalid argument", err)
	}
	if _, err := s.Images.Update(ctx, images.Image{Name: "nothere", Target: target("a")}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Update(absent) = %v, want not found", err)
	}
}

func testImageList(ctx context.Context, t *testing.T, s Setup) {
	for i, name := range []string{"docker.io/library/alpine:3.19", "docker.io/library/alpine:3.20", "ghcr.io/x/y:1"} {
		img := images.Image{Name: name, Target: target(name), Labels: map[string]string{"idx": fmt.Sprint(i)}}
		if i == 2 {
			img.Target.MediaType = ocispec.MediaTypeImageManifest
			img.Labels["com.example.team"] = "infra"
		}
		if _, err := s.Images.Create(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		filters []string
		want    string
	}{
		{"all", nil, "[docker.io/library/alpine:3.19 docker.io/library/alpine:3.20 ghcr.io/x/y:1]"},
		{"name", []string{"name==docker.io/library/alpine:3.20"}, "[docker.io/library/alpine:3.20]"},
		{"not-name", []string{"name!=docker.io/library/alpine:3.20"}, "[docker.io/library/alpine:3.19 ghcr.io/x/y:1]"},
		{"regexp", []string{`name~=^docker\.io/`}, "[docker.io/library/alpine:3.19 docker.io/library/alpine:3.20]"},
		{"label", []string{`labels."com.example.team"==infra`}, "[ghcr.io/x/y:1]"},
		{"label-presence", []string{`labels."com.example.team"`}, "[ghcr.io/x/y:1]"},
		{"mediatype", []string{"target.mediatype==" + ocispec.MediaTypeImageManifest}, "[ghcr.io/x/y:1]"},
		{"digest", []string{"target.digest==" + target("ghcr.io/x/y:1").Digest.String()}, "[ghcr.io/x/y:1]"},
		{"and", []string{`name~=alpine,labels.idx==1`}, "[docker.io/library/alpine:3.20]"},
		{"or", []string{`labels.idx==0`, `labels.idx==2`}, "[docker.io/library/alpine:3.19 ghcr.io/x/y:1]"},
	} {
		imgs, err := s.Images.List(ctx, tc.filters...)
		if err != nil {
			t.Fatalf("List(%q) = %v", tc.filters, err)
		}
		var names []string
		for _, img := range imgs {
			names = append(names, img.Name)
		}
		if got := fmt.Sprint(names); got != tc.want {
			t.Errorf("%s: List(%q) = %s, want %s", tc.name, tc.filters, got, tc.want)
		}
	}
	if _, err := s.Images.List(ctx, "name=="); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("List(bad filter) = %v, want invalid argument", err)
	}
}

func testImageDelete(ctx context.Context, t *testing.T, s Setup) {
	if _, err := s.Images.Create(ctx, images.Image{Name: "d:1", Target: target("d")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Images.Delete(ctx, "d:1", images.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Images.Get(ctx, "d:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if err := s.Images.Delete(ctx, "d:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete = %v, want not found", err)
	}
}

func testImageInvalid(ctx context.Context, t *testing.T, s Setup) {
	for _, tc := range []struct {
		name string
		img  images.Image
	}{
		{"no-name", images.Image{Target: target("a")}},
		{"no-mediatype", images.Image{Name: "a", Target: ocispec.Descriptor{Digest: digest.FromString("a")}}},
		{"bad-digest", images.Image{Name: "a", Target: ocispec.Descriptor{MediaType: "x", Digest: "sha256:zz"}}},
		{"big-label", images.Image{Name: "a", Target: target("a"), Labels: map[string]string{"k": string(make([]byte, 5000))}}},
	} {
		if _, err := s.Images.Create(ctx, tc.img); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Create = %v, want invalid argument", tc.name, err)
		}
	}
	if imgs, _ := s.Images.List(ctx); len(imgs) != 0 {
		t.Fatalf("%d images after invalid creates, want 0", len(imgs))
	}
	if _, err := s.Images.List(context.Background()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("List without namespace = %v, want failed precondition", err)
	}
}

func testImageNamespaces(ctx context.Context, t *testing.T, s Setup) {
	a := namespaces.WithNamespace(ctx, "a")
	b := namespaces.WithNamespace(ctx, "b")
	if _, err := s.Images.Create(a, images.Image{Name: "n:1", Target: target("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Images.Get(b, "n:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get in other namespace = %v, want not found", err)
	}
	if _, err := s.Images.Create(b, images.Image{Name: "n:1", Target: target("b")}); err != nil {
		t.Fatalf("same name in other namespace: %v", err)
	}
	ia, _ := s.Images.Get(a, "n:1")
	if ia.Target.Digest != target("a").Digest {
		t.Fatal("namespace b's image replaced a's")
	}
}
