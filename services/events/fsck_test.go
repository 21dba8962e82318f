package events_test

import (
	"bytes"
	"context"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

// TestFsckRepairEvents: the images fsck --repair removes (issue 11, item
// 4: a manifest that cannot be parsed) are deleted for event subscribers
// too, as the images service's deletes are.
func TestFsckRepairEvents(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "a")
	garbage := []byte("{not json")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(garbage), Size: int64(len(garbage))}
	if err := content.WriteBlob(ctx, d.Store.DB.ContentStore(), "g", bytes.NewReader(garbage), desc); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.DB.Images().Create(ctx, images.Image{Name: "garbage:1", Target: desc}); err != nil {
		t.Fatal(err)
	}
	stream := subscribe(t, d, `topic~="^/images/"`)
	res, err := client.RunJob(ctx, d.Conn, jobs.Request{Fsck: &jobs.FsckRequest{Repair: true}}, jobs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fsck == nil || res.Fsck.Damaged() || len(res.Fsck.Problems) != 1 || !res.Fsck.Problems[0].Repaired {
		t.Fatalf("fsck --repair = %+v", res.Fsck)
	}
	publishEnd(t, d)
	checkEvents(t, "fsck --repair", readToEnd(t, stream), []eventSeen{
		{"a", "/images/delete", "containerd.services.images.v1.ImageDelete", fields("name", "garbage:1"), nil},
	})
}
