package buildkit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"runtime"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/internal/testutil"
)

// busyboxBin is Debian's busybox-static: one static binary, so the image
// needs no libraries. scripts/deps.sh installs it.
const busyboxBin = "/bin/busybox"

// busyboxApplets are the commands the image links to busybox: what the
// Dockerfiles of these tests run.
var busyboxApplets = []string{"sh", "echo", "cat", "ls", "mkdir", "test", "true", "false"}

// pushBusybox pushes a one-layer image for the host's platform, made of
// Debian's static busybox and links to it in /bin, to repo:tag on the
// registry at host, and returns the reference. Nothing is downloaded.
func pushBusybox(t *testing.T, host, repo, tag string) string {
	t.Helper()
	bin, err := os.ReadFile(busyboxBin)
	if err != nil {
		t.Fatalf("the busybox image needs Debian's busybox-static (scripts/deps.sh installs it): %v", err)
	}
	mtime := time.Unix(1700000000, 0)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
		{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))},
	}
	for _, a := range busyboxApplets {
		hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	for _, h := range hdrs {
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Name == "bin/busybox" {
			if _, err := tw.Write(bin); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := ocispec.Image{
		Created:  &mtime,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw.Bytes())}},
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    testutil.PushBlob(t, host, repo, cb, ocispec.MediaTypeImageConfig),
		Layers:    []ocispec.Descriptor{testutil.PushBlob(t, host, repo, gz.Bytes(), ocispec.MediaTypeImageLayerGzip)},
	}
	testutil.PushManifest(t, host, repo, tag, m, ocispec.MediaTypeImageManifest)
	return host + "/" + repo + ":" + tag
}
