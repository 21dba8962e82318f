package metadata_test

import (
	"context"
	"testing"

	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/metadata/metadatatest"
)

func openSetup(t *testing.T) metadatatest.Setup {
	db := newDB(t, metadata.WithIngestGrace(0))
	return metadatatest.Setup{
		Content:    db.ContentStore(),
		Images:     db.Images(),
		Leases:     db.Leases(),
		Namespaces: db.Namespaces(),
		Containers: db.Containers(),
		GC: func(ctx context.Context, dryRun bool) (gc.Stats, error) {
			return db.GarbageCollect(ctx, metadata.GCOptions{DryRun: dryRun})
		},
	}
}

func TestImages(t *testing.T)     { metadatatest.RunImages(t, openSetup) }
func TestLeases(t *testing.T)     { metadatatest.RunLeases(t, openSetup) }
func TestNamespaces(t *testing.T) { metadatatest.RunNamespaces(t, openSetup) }
func TestGC(t *testing.T)         { metadatatest.RunGC(t, openSetup) }
func TestContainers(t *testing.T) { metadatatest.RunContainers(t, openSetup) }
