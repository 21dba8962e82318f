package dockerarchive_test

import (
	"context"
	"io"
	"testing"

	"github.com/strata-oci/strata/archive/archivetest"
	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/wiring"
)

// TestArchiveSuite runs the round-trip suite over docker save archives,
// which hold one platform of each image: an index comes back as its
// host platform's manifest.
func TestArchiveSuite(t *testing.T) {
	archivetest.Run(t, archivetest.Format{
		Export: func(ctx context.Context, w io.Writer, cs content.Provider, imgs []images.Image, o archivetest.ExportOptions) error {
			return dockerarchive.Export(ctx, w, cs, imgs, nil)
		},
		// ocilayout.Import reads docker archives today; issue 13 gives
		// them a dockerarchive.Import of their own.
		Import: func(ctx context.Context, r io.Reader, st *wiring.Store, o archivetest.ImportOptions) ([]images.Image, error) {
			return ocilayout.Import(ctx, r, st, ocilayout.ImportOptions{BaseName: o.BaseName, AllPlatforms: o.AllPlatforms})
		},
		Legacy: true,
	})
}
