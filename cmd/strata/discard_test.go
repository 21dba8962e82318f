package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/testutil"
)

// TestImagesDiscardLayers (issue 12, item 1): strata images discard-layers
// frees the compressed layers of an unpacked image at once; images check
// still says complete and counts the layers as discarded, du shows the
// bytes saved, the image still mounts, and push fetches the layers again
// from the registry it came from, and so does export.
func TestImagesDiscardLayers(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "cli/discard", "v1")
	c := newCLI(t)
	c.ok("pull", "-q", fx.Ref)
	type duRow struct {
		Name      string
		Blobs     struct{ Total int64 }
		Discarded int64
	}
	before := decodeOut[struct{ Images []duRow }](t, c.ok("du", "-o", "json")).Images
	if len(before) != 1 || before[0].Discarded != 0 {
		t.Fatalf("du before discard = %+v", before)
	}

	out := c.ok("images", "discard-layers")
	if !strings.Contains(out, "layers of 1 manifest(s) discarded") || !strings.Contains(out, "freed") {
		t.Fatalf("images discard-layers printed:\n%s", out)
	}
	after := decodeOut[struct{ Images []duRow }](t, c.ok("du", "-o", "json")).Images
	if len(after) != 1 || after[0].Discarded == 0 || after[0].Blobs.Total+after[0].Discarded != before[0].Blobs.Total {
		t.Fatalf("du after discard = %+v, want the layers' bytes moved from blobs to discarded (before %+v)", after, before)
	}
	type checkRow struct {
		Status    string
		Discarded int
	}
	rows := decodeOut[[]checkRow](t, c.ok("images", "check", "-o", "json"))
	if len(rows) != 1 || rows[0].Status != "complete" || rows[0].Discarded != 3 {
		t.Fatalf("images check after discard = %+v, want complete with 3 layers discarded", rows)
	}
	if out := c.ok("images", "check"); !strings.Contains(out, "3 layers discarded") {
		t.Fatalf("images check after discard:\n%s", out)
	}
	c.ok("push", reg.Host+"/cli/copy:v1", fx.Ref)

	// Export fetches them again too: the archive is whole.
	archive := filepath.Join(t.TempDir(), "app.tar")
	c.ok("images", "export", archive, fx.Ref)
	other := newCLI(t)
	other.ok("images", "import", archive)
	rows = decodeOut[[]checkRow](t, other.ok("images", "check", "-o", "json"))
	if len(rows) != 1 || rows[0].Status != "complete" || rows[0].Discarded != 0 {
		t.Fatalf("images check of the exported image imported elsewhere = %+v, want complete", rows)
	}
}
