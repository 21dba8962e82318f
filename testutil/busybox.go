package testutil

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxBinary is Debian's busybox-static (scripts/deps.sh installs it):
// one static binary, so an image of it runs anywhere, and nothing is
// downloaded.
const BusyboxBinary = "/bin/busybox"

// BusyboxImageName is the name BusyboxLayout gives its image.
const BusyboxImageName = "docker.io/library/busybox:strata-test"

// busyboxLayer is the one layer of the busybox image: /bin/busybox, a
// symlink to it for each applet where `busybox --list-full` puts it, and
// the directories a container needs.
func busyboxLayer(t testing.TB) []byte {
	t.Helper()
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		t.Fatalf("busybox image: %v (install busybox-static: scripts/deps.sh)", err)
	}
	out, err := exec.Command(BusyboxBinary, "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	mtime := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	dir := func(p string) {
		for _, d := range []string{path.Dir(path.Dir(p)), path.Dir(p)} {
			if d == "." || d == "/" || dirs[d] {
				continue
			}
			dirs[d] = true
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime})
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "sbin", "var"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		dirs[d] = true
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: mtime})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime})
	tw.Write(bin)
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for _, name := range []string{"etc/passwd", "etc/group"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(etc[name])), ModTime: mtime})
		tw.Write([]byte(etc[name]))
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "bin/busybox" {
			continue
		}
		dir(p)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BusyboxRootfs writes the busybox image's root filesystem into dir (for
// tests that hand a runtime a directory, not an image).
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	layer := busyboxLayer(t)
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, os.FileMode(h.Mode).Perm())
			if h.Mode&0o1000 != 0 {
				os.Chmod(p, os.FileMode(h.Mode).Perm()|os.ModeSticky)
			}
		case tar.TypeSymlink:
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, os.FileMode(h.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BusyboxLayout writes an OCI image layout tar of a one-layer linux image
// of busybox (config Cmd ["sh"]) for the host's architecture, named
// BusyboxImageName (annotations io.containerd.image.name and
// org.opencontainers.image.ref.name, which `ctr images import` reads),
// and returns its path, removed when the test ends.
func BusyboxLayout(t testing.TB) string {
	t.Helper()
	return BusyboxLayoutWith(t, BusyboxImageName, nil)
}

// BusyboxLayoutWith is BusyboxLayout for an image named name whose config
// edit changes (VOLUME, ENTRYPOINT…; nil changes nothing).
func BusyboxLayoutWith(t testing.TB, name string, edit func(*ocispec.ImageConfig)) string {
	t.Helper()
	layer := busyboxLayer(t)
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	}
	if edit != nil {
		edit(&cfg.Config)
	}
	cfgJSON, _ := json.Marshal(cfg)
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgJSON), Size: int64(len(cfgJSON))}
	man := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfgDesc, Layers: []ocispec.Descriptor{layerDesc}}
	manJSON, _ := json.Marshal(man)
	manDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manJSON), Size: int64(len(manJSON)),
		Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Annotations: map[string]string{
			"io.containerd.image.name": name,
			ocispec.AnnotationRefName:  "strata-test",
		}}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manDesc}}
	idxJSON, _ := json.Marshal(idx)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/sha256/", Mode: 0o755})
	file(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file(ocispec.ImageIndexFile, idxJSON)
	for _, b := range [][]byte{layer, cfgJSON, manJSON} {
		file("blobs/sha256/"+digest.FromBytes(b).Encoded(), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "busybox.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Logger returns a logger writing to the test's log (debug and up), for
// components whose logs help explain a failure.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
