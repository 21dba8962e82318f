package pull_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
)

// TestPullNoSpace: a pull that runs the store's filesystem out of space
// fails saying so and naming the blob, drops its partial downloads, and a
// collection then gives all the space back (issue 11, item 7).
func TestPullNoSpace(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	const layerSize = 2 << 20
	fx := testutil.PushRandomImage(t, reg.Host, "big", "v1", 3, layerSize)
	layers := fixtureLayers(t, fx)

	root, err := os.MkdirTemp("", "store")
	if err != nil {
		t.Fatal(err)
	}
	contentDir := filepath.Join(root, "content")
	const fsSize = 3 << 20 // the image is twice that
	testutil.SmallFS(t, contentDir, fsSize)
	st := storetest.OpenAt(t, root)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), 3*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, store: st, p: pull.New(st, docker.NewResolver(docker.Options{RetryBase: 10 * time.Millisecond}))}
	empty := testutil.FreeBytes(t, contentDir)

	_, err = e.p.Pull(e.ctx, mustRef(t, fx.Ref), pull.Options{})
	t.Logf("pull: %v", err)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("pull onto a %d-byte filesystem = %v, want a no-space error", fsSize, err)
	}
	named := false
	for _, l := range layers {
		named = named || strings.Contains(err.Error(), l.Digest.String())
	}
	if !named {
		t.Errorf("error %q names no layer", err)
	}
	if left := e.ingests(""); len(left) != 0 {
		t.Fatalf("a pull that ran out of space left partial downloads %v", left)
	}
	if ents, err := os.ReadDir(filepath.Join(contentDir, "ingest")); err != nil || len(ents) != 0 {
		t.Fatalf("ingest directory after the failed pull: %v, %v; want empty", ents, err)
	}
	e.wantFailedClean()
	// Within a few blocks of empty: the directories themselves.
	if free := testutil.FreeBytes(t, contentDir); free < empty-64<<10 {
		t.Fatalf("after GC %d bytes free of %d when empty", free, empty)
	}
}
