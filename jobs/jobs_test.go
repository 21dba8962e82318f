package jobs

import (
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/testutil/storetest"
)

// TestSnapshotterName: every job resolves a snapshotter the same way.
func TestSnapshotterName(t *testing.T) {
	st, _ := storetest.Open(t)
	r := NewRunner(st, Defaults{})
	if name, err := r.snapshotter(""); err != nil || name != st.DefaultSnapshotter {
		t.Fatalf("default = %q, %v; want %q", name, err, st.DefaultSnapshotter)
	}
	if name, err := r.snapshotter("native"); err != nil || name != "native" {
		t.Fatalf("native = %q, %v", name, err)
	}
	if _, err := r.snapshotter("zfs"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("zfs: %v, want invalid argument", err)
	}
}
