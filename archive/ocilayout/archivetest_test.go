package ocilayout_test

import (
	"context"
	"io"
	"testing"

	"github.com/strata-oci/strata/archive/archivetest"
	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/wiring"
)

// TestArchiveSuite runs the round-trip suite over OCI image layouts, which
// keep an image's index, every platform and the attestations.
func TestArchiveSuite(t *testing.T) {
	archivetest.Run(t, archivetest.Format{
		Export: func(ctx context.Context, w io.Writer, cs content.Provider, imgs []images.Image, o archivetest.ExportOptions) error {
			return ocilayout.Export(ctx, w, cs, imgs, ocilayout.ExportOptions{AllPlatforms: o.AllPlatforms})
		},
		Import: func(ctx context.Context, r io.Reader, st *wiring.Store, o archivetest.ImportOptions) ([]images.Image, error) {
			return ocilayout.Import(ctx, r, st, ocilayout.ImportOptions{BaseName: o.BaseName, AllPlatforms: o.AllPlatforms})
		},
		KeepsIndex:   true,
		AllPlatforms: true,
	})
}
