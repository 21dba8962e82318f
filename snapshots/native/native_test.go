package native

import (
	"testing"

	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/snapshottest"
)

func TestNative(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T, root string) snapshots.Snapshotter {
		sn, err := New(root)
		if err != nil {
			t.Fatal(err)
		}
		return sn
	})
}
