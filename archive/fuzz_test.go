package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-oci/strata/archive/tartest"
)

// FuzzApply applies arbitrary bytes as a layer, in both whiteout modes, and
// asserts the property that matters: nothing outside the root changes (and
// nothing panics). The escape table and a few plain layers are its seeds.
func FuzzApply(f *testing.F) {
	for _, tc := range escapeCases {
		for _, l := range tc.layers {
			f.Add(l, false)
		}
	}
	f.Add(base(), true)
	f.Add(upper(), false)
	f.Add(tartest.Gzip(base()), true)
	f.Fuzz(func(t *testing.T, layer []byte, native bool) {
		tmp := t.TempDir()
		rootDir := filepath.Join(tmp, "root")
		os.MkdirAll(filepath.Join(tmp, "outside"), 0o755)
		os.WriteFile(filepath.Join(tmp, "outside", "sentinel"), []byte("safe"), 0o644)
		os.WriteFile(filepath.Join(tmp, "victim"), []byte("safe"), 0o644)
		os.Symlink("../outside", filepath.Join(tmp, "outside", "loop"))
		os.Mkdir(rootDir, 0o755)
		// Give entries something to trip over: links out of the root.
		os.Symlink("../outside", filepath.Join(rootDir, "out"))
		os.Symlink("/", filepath.Join(rootDir, "slash"))
		before := snapshot(t, tmp, rootDir)
		mode := WhiteoutOverlay
		if native {
			mode = WhiteoutNative
		}
		Apply(context.Background(), rootDir, bytes.NewReader(layer), ApplyOptions{Whiteouts: mode, Limits: Limits{MaxEntries: 1000, MaxPathLen: 4096, MaxXattrs: 16, MaxXattrSize: 4096}})
		after := snapshot(t, tmp, rootDir)
		for p, d := range before {
			if after[p] != d {
				t.Fatalf("%s changed outside the root: %q -> %q", p, d, after[p])
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Fatalf("%s created outside the root", p)
			}
		}
	})
}
