package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// skopeoArchive copies the registry image ref into an archive at dest
// (oci-archive:FILE:ref, docker-archive:FILE:ref).
func skopeoArchive(t *testing.T, ref, dest string) {
	t.Helper()
	cmd := exec.Command("skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, dest)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s %s: %v\n%s", ref, dest, err, out)
	}
}

func importCLI(t *testing.T) *cli {
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	return c
}

func TestImportCommand(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushWhiteoutImage(t, reg.Host, "cli/import", "v1")
	dir := t.TempDir()
	ociTar, dockerTar := filepath.Join(dir, "oci.tar"), filepath.Join(dir, "docker.tar")
	skopeoArchive(t, fx.Ref, "oci-archive:"+ociTar+":"+fx.Ref)
	skopeoArchive(t, fx.Ref, "docker-archive:"+dockerTar+":"+fx.Ref)

	// An OCI archive from a file, unpacked.
	c := importCLI(t)
	if out := c.ok("images", "import", ociTar); out != fx.Ref+"\n" {
		t.Fatalf("images import printed %q, want %q", out, fx.Ref)
	}
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		img, err := s.DB.Images().Get(ctx, fx.Ref)
		if err != nil || img.Target.Digest != fx.Root.Digest {
			t.Fatalf("image %s = %+v, %v; want target %s", fx.Ref, img, err, fx.Root.Digest)
		}
		storetest.WantTree(t, fx.Tree, storetest.Tree(t, ctx, s, fx.Ref))
	})
	c.ok("fsck")

	// A docker archive from stdin, not unpacked, named by digest too.
	c = importCLI(t)
	data, err := os.ReadFile(dockerTar)
	if err != nil {
		t.Fatal(err)
	}
	r := c.runIn(bytes.NewReader(data), "images", "import", "--no-unpack", "--digests", "--base-name", "example.com/loaded", "-")
	names := strings.Fields(r.stdout)
	if r.code != 0 || len(names) != 2 || names[0] != fx.Ref || !strings.HasPrefix(names[1], "example.com/loaded@sha256:") {
		t.Fatalf("images import --no-unpack --digests -: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if out := c.ok("snapshots", "ls", "-q"); out != "" {
		t.Fatalf("snapshots after import --no-unpack: %q", out)
	}

	// A truncated archive records nothing.
	c = importCLI(t)
	oci, err := os.ReadFile(ociTar)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(oci)/2/512*512 + 100
	r = c.runIn(bytes.NewReader(oci[:cut]), "images", "import", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "strata: import stdin: archive is truncated") {
		t.Fatalf("import of a truncated archive: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := c.ok("images", "ls", "-q"); out != "" {
		t.Fatalf("images after a failed import: %q", out)
	}
	c.fails(2, `--base-name "Bad Name"`, "images", "import", "--base-name", "Bad Name", ociTar)
	c.fails(2, `--snapshotter "nope"`, "images", "import", "--snapshotter", "nope", ociTar)
	c.fails(1, "no such file or directory", "images", "import", filepath.Join(dir, "missing.tar"))
	c.fails(2, "takes 1 argument(s)", "images", "import")
}
