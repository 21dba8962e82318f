package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/testutil"
)

// exportFiles reads an archive's regular files.
func exportFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if files[hdr.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// exportDirEntries lists dir.
func exportDirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// exportSkopeo copies src to a directory with Debian's skopeo and returns
// the manifest it wrote.
func exportSkopeo(t *testing.T, src string) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	cmd := exec.Command("skopeo", "--insecure-policy", "copy", "-q", src, "dir:"+dir)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", src, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImagesExportCommand(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	multi := testutil.PushMultiPlatform(t, reg.Host, "cli/multi", "m1")
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "a1")
	c := newCLI(t)
	c.ok("pull", "-q", "--no-unpack", multi.Ref)
	c.ok("pull", "-q", "--no-unpack", app.Ref)
	dir := t.TempDir()

	// OCI to a file: both images in index.json, skopeo reads it.
	out := filepath.Join(dir, "images.tar")
	if got := c.ok("images", "export", out, multi.Ref, app.Ref); got != "" {
		t.Fatalf("export printed %q", got)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
		t.Errorf("archive mode %v, want 0644", st.Mode().Perm())
	}
	var idx ocispec.Index
	if err := json.Unmarshal(exportFiles(t, b)["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range idx.Manifests {
		names = append(names, m.Annotations["io.containerd.image.name"]+"="+m.Digest.String())
	}
	if want := []string{multi.Ref + "=" + multi.Root.Digest.String(), app.Ref + "=" + app.Root.Digest.String()}; !slices.Equal(names, want) {
		t.Fatalf("index.json names %q, want %q", names, want)
	}
	if got := digest.FromBytes(exportSkopeo(t, "oci-archive:"+out+":a1")); got != app.Root.Digest {
		t.Fatalf("skopeo read manifest %s, want %s", got, app.Root.Digest)
	}

	// "-" streams the same bytes to stdout.
	r := c.run("images", "export", "-", multi.Ref, app.Ref)
	if r.code != 0 || r.stdout != string(b) {
		t.Fatalf("export - : exit %d, %d bytes on stdout (want the %d of the file), stderr %q", r.code, len(r.stdout), len(b), r.stderr)
	}

	// Docker format, read by skopeo.
	dout := filepath.Join(dir, "docker.tar")
	c.ok("images", "export", "--format", "docker", dout, app.Ref)
	var m ocispec.Manifest
	json.Unmarshal(app.Blobs[app.Root.Digest], &m)
	var got ocispec.Manifest
	if err := json.Unmarshal(exportSkopeo(t, "docker-archive:"+dout+":"+app.Ref), &got); err != nil {
		t.Fatal(err)
	}
	if got.Config.Digest != m.Config.Digest {
		t.Fatalf("skopeo read the docker archive with config %s, want %s", got.Config.Digest, m.Config.Digest)
	}

	// Failures leave no OUT (and an existing one as it was), and no
	// temporary file.
	before := exportDirEntries(t, dir)
	c.fails(1, `image "`+reg.Host+`/cli/nothing:1" in namespace "default": not found`, "images", "export", filepath.Join(dir, "x.tar"), app.Ref, reg.Host+"/cli/nothing:1")
	c.fails(1, `image "`+multi.Ref+`" (linux/arm64/v8)`, "images", "export", "--all-platforms", filepath.Join(dir, "x.tar"), multi.Ref)
	c.fails(1, "not in the content store", "images", "export", "--all-platforms", out, multi.Ref)
	if after := exportDirEntries(t, dir); !slices.Equal(after, before) {
		t.Fatalf("failed exports changed %s: %q, was %q", dir, after, before)
	}
	if b2, _ := os.ReadFile(out); !bytes.Equal(b2, b) {
		t.Fatal("a failed export changed the existing archive")
	}
	c.ok("images", "export", "--all-platforms", "--skip-missing", filepath.Join(dir, "x.tar"), multi.Ref)

	x := filepath.Join(dir, "never.tar")
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"bad-format", []string{"--format", "zip", x, app.Ref}, `--format "zip"`},
		{"docker-all", []string{"--format", "docker", "--all-platforms", x, app.Ref}, "one platform per image"},
		{"docker-two", []string{"--format", "docker", "--platform", "linux/amd64,linux/arm64", x, app.Ref}, "one platform per image"},
		{"both", []string{"--platform", "linux/amd64", "--all-platforms", x, app.Ref}, "exclude each other"},
		{"bad-platform", []string{"--platform", "linux/nonsense/x/y", x, app.Ref}, "linux/nonsense/x/y"},
		{"no-ref", []string{x}, "needs at least 2 argument(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.fails(2, tc.msg, append([]string{"images", "export"}, tc.args...)...)
		})
	}
}
