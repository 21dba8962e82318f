package containerd

import (
	"context"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
	snapshotsproxy "github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
)

// snapshotter returns containerd's SnapshotterFunc over a stratad of its
// own, through the snapshots service, for the snapshotter name.
func snapshotter(name string) testsuite.SnapshotterFunc {
	return func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		d, err := startStratad(root, name, "shared")
		if err != nil {
			return nil, nil, err
		}
		return snapshotsproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(d.conn), name), d.stop, nil
	}
}

func TestSnapshotSuite(t *testing.T) {
	requireRoot(t)
	for _, name := range []string{"overlayfs", "native"} {
		t.Run(name, func(t *testing.T) {
			testsuite.SnapshotterSuite(t, name, snapshotter(name))
		})
	}
}
