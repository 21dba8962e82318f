package imageimport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/testutil/storetest"
)

// failingImages is the real image store, except that writing one name
// fails: the fault a cancelled or broken import meets half-way.
type failingImages struct {
	images.Store
	fail string
}

func (f failingImages) Create(ctx context.Context, img images.Image) (images.Image, error) {
	if img.Name == f.fail {
		return images.Image{}, fmt.Errorf("injected: %w", errdefs.ErrUnavailable)
	}
	return f.Store.Create(ctx, img)
}

// TestRecordRollsBack: when one name cannot be written, an import leaves
// the image records as they were: names it created are gone, names it
// pointed elsewhere point at their old target again.
func TestRecordRollsBack(t *testing.T) {
	st, ctx := storetest.Open(t)
	is := st.DB.Images()
	oldTarget := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("old"), Size: 3}
	newTarget := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("new"), Size: 3}
	if _, err := is.Create(ctx, images.Image{Name: "example.com/kept:1", Target: oldTarget, Labels: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	im := &Archive{}
	_, err := im.record(ctx, failingImages{Store: is, fail: "example.com/broken:1"}, []Target{
		{Desc: newTarget, Names: []string{"example.com/new:1", "example.com/kept:1", "example.com/broken:1"}},
	})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "example.com/broken:1") {
		t.Fatalf("record = %v, want the injected failure naming example.com/broken:1", err)
	}
	if _, err := is.Get(ctx, "example.com/new:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("created name after a failed import: %v, want not found", err)
	}
	kept, err := is.Get(ctx, "example.com/kept:1")
	if err != nil {
		t.Fatal(err)
	}
	if kept.Target.Digest != oldTarget.Digest || kept.Labels["team"] != "a" {
		t.Errorf("retargeted name after a failed import = %v %v, want %s and its labels", kept.Target.Digest, kept.Labels, oldTarget.Digest)
	}
}
