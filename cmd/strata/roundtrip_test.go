package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/testutil"
)

// TestExportImportRoundTrip: pull → export (both formats) → rm → GC →
// import gives the same image: target digest, content, and the mounted
// tree of the fixture.
func TestExportImportRoundTrip(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fixtures := []testutil.Fixture{
		testutil.PushWhiteoutImage(t, reg.Host, "rt/whiteouts", "v1"),
		testutil.PushMultiPlatform(t, reg.Host, "rt/multi", "v1"),
		testutil.PushDockerSchema2(t, reg.Host, "rt/docker", "v1"),
	}
	for _, format := range []string{"oci", "docker"} {
		for _, fx := range fixtures {
			t.Run(format+"/"+fx.Ref[strings.Index(fx.Ref, "/")+1:], func(t *testing.T) {
				c := newCLI(t)
				t.Cleanup(func() {
					if err := mount.UnmountUnder(c.root); err != nil {
						t.Error(err)
					}
				})
				c.ok("pull", "-q", fx.Ref)
				before := c.ok("content", "ls", "-q")
				want := fx.Root.Digest.String()
				if format == "docker" && images.IsIndex(fx.Root.MediaType) {
					// A docker archive holds one manifest per image, no index.
					var info struct {
						ManifestDigest string `json:"manifest_digest"`
					}
					if err := json.Unmarshal([]byte(c.ok("images", "inspect", "-o", "json", fx.Ref)), &info); err != nil || info.ManifestDigest == "" {
						t.Fatalf("inspect: %v", err)
					}
					want = info.ManifestDigest
				}
				out := filepath.Join(t.TempDir(), "image.tar")
				c.ok("images", "export", "--format", format, out, fx.Ref)
				c.ok("images", "rm", "--sync", fx.Ref)
				if left := c.ok("content", "ls", "-q"); left != "" {
					t.Fatalf("after rm --sync blobs remain: %q", left)
				}
				names := c.ok("images", "import", out)
				if strings.TrimSpace(names) != fx.Ref {
					t.Fatalf("import printed %q, want %q", names, fx.Ref)
				}
				img := c.ok("images", "ls", "-q", "target.digest=="+want)
				if strings.TrimSpace(img) != fx.Ref {
					t.Fatalf("after import no image %s targets %s (images: %q)", fx.Ref, want, c.ok("images", "ls"))
				}
				if after := c.ok("content", "ls", "-q"); format == "oci" && after != before {
					t.Fatalf("blobs after the round trip:\n%s\nbefore:\n%s", after, before)
				}
				dir := t.TempDir()
				c.ok("images", "mount", fx.Ref, dir)
				got := testutil.ReadTree(t, dir)
				c.ok("images", "unmount", "--rm", dir)
				if d := testutil.DiffTrees(fx.Tree, got); len(d) > 0 {
					t.Fatalf("imported tree differs:\n%s", strings.Join(d, "\n"))
				}
				c.ok("fsck")
			})
		}
	}
}
