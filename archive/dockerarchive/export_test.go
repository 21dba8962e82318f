package dockerarchive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// expItem is an entry of manifest.json as docker load reads it.
type expItem struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// expSaved is an exported archive, read back.
type expSaved struct {
	raw   []byte
	names []string
	files map[string][]byte
	items []expItem
	repos map[string]map[string]string
}

func expReadSaved(t *testing.T, b []byte) expSaved {
	t.Helper()
	a := expSaved{raw: b, files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if _, dup := a.files[hdr.Name]; dup {
			t.Fatalf("archive has %s twice", hdr.Name)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			a.names = append(a.names, hdr.Name)
		}
		a.files[hdr.Name] = body
		if rest, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/"); ok && hdr.Typeflag == tar.TypeReg && digest.FromBytes(body).Encoded() != rest {
			t.Fatalf("blob %s has digest %s", hdr.Name, digest.FromBytes(body))
		}
	}
	if len(a.names) < 2 || a.names[0] != "manifest.json" || a.names[1] != "repositories" {
		t.Fatalf("archive starts with %q, want manifest.json, repositories", a.names)
	}
	if err := json.Unmarshal(a.files["manifest.json"], &a.items); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if err := json.Unmarshal(a.files["repositories"], &a.repos); err != nil {
		t.Fatalf("repositories: %v", err)
	}
	return a
}

// expEnv is a store that pulls from a registry of its own.
type expEnv struct {
	t   *testing.T
	ctx context.Context
	st  *wiring.Store
	reg *testutil.Registry
}

func newExpEnv(t *testing.T) *expEnv {
	t.Helper()
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	st, ctx := storetest.Open(t)
	return &expEnv{t: t, ctx: ctx, st: st, reg: reg}
}

func (e *expEnv) pull(ref string, o pull.Options) images.Image {
	e.t.Helper()
	o.NoUnpack = true
	return storetest.Pull(e.t, e.ctx, e.st, ref, o)
}

func (e *expEnv) export(m images.PlatformMatcher, imgs ...images.Image) ([]byte, error) {
	var buf bytes.Buffer
	err := dockerarchive.Export(e.ctx, &buf, e.st.DB.ContentStore(), imgs, m)
	return buf.Bytes(), err
}

// expManifest returns the fixture's manifest for p (the root when it is a
// manifest), parsed.
func expManifest(t *testing.T, fx testutil.Fixture, p ocispec.Platform) (ocispec.Descriptor, ocispec.Manifest) {
	t.Helper()
	desc := fx.Root
	if images.IsIndex(fx.Root.MediaType) {
		var idx ocispec.Index
		json.Unmarshal(fx.Blobs[fx.Root.Digest], &idx)
		i := slices.IndexFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return images.Any(p).Match(*d.Platform) })
		if i < 0 {
			t.Fatalf("fixture %s has no manifest for %s", fx.Ref, images.FormatPlatform(p))
		}
		desc = idx.Manifests[i]
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.Blobs[desc.Digest], &m); err != nil {
		t.Fatal(err)
	}
	return desc, m
}

// checkItem checks the entry of manifest.json for the manifest m of fx:
// its config and layers are the fixture's bytes.
func (a expSaved) checkItem(t *testing.T, fx testutil.Fixture, m ocispec.Manifest, tags ...string) {
	t.Helper()
	i := slices.IndexFunc(a.items, func(it expItem) bool { return it.Config == "blobs/sha256/"+m.Config.Digest.Encoded() })
	if i < 0 {
		t.Fatalf("manifest.json has no entry with config %s: %+v", m.Config.Digest, a.items)
	}
	it := a.items[i]
	if !slices.Equal(it.RepoTags, tags) {
		t.Errorf("RepoTags of %s = %q, want %q", fx.Ref, it.RepoTags, tags)
	}
	if !bytes.Equal(a.files[it.Config], fx.Blobs[m.Config.Digest]) {
		t.Errorf("config of %s differs from the fixture's", fx.Ref)
	}
	if len(it.Layers) != len(m.Layers) {
		t.Fatalf("%s: %d layers in manifest.json, want %d", fx.Ref, len(it.Layers), len(m.Layers))
	}
	for j, l := range m.Layers {
		if it.Layers[j] != "blobs/sha256/"+l.Digest.Encoded() || !bytes.Equal(a.files[it.Layers[j]], fx.Blobs[l.Digest]) {
			t.Errorf("%s: layer %d is %s, want the blob %s as pulled", fx.Ref, j, it.Layers[j], l.Digest)
		}
	}
}

// expSkopeoDir copies the image ref of the docker archive at p to a
// directory with Debian's skopeo and returns the manifest it wrote.
func expSkopeoDir(t *testing.T, p, ref string) (ocispec.Manifest, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	cmd := exec.Command("skopeo", "--insecure-policy", "copy", "-q", "docker-archive:"+p+":"+ref, "dir:"+dir)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy docker-archive:%s:%s: %v\n%s", p, ref, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m, dir
}

// TestExport writes OCI and Docker images with gzip, zstd and plain layers
// and one platform of an index, and reads them back with skopeo.
func TestExport(t *testing.T) {
	e := newExpEnv(t)
	fxs := []testutil.Fixture{
		testutil.PushWhiteoutImage(t, e.reg.Host, "exp/whiteout", "v1"),
		testutil.PushDockerSchema2(t, e.reg.Host, "exp/docker", "v2"),
		testutil.PushZstd(t, e.reg.Host, "exp/zstd", "v3"),
		testutil.PushMultiPlatform(t, e.reg.Host, "exp/multi", "v4"),
	}
	var imgs []images.Image
	for _, fx := range fxs {
		imgs = append(imgs, e.pull(fx.Ref, pull.Options{}))
	}
	// A second name of the whiteout image shares its entry.
	alias := imgs[0]
	alias.Name = e.reg.Host + "/exp/alias:latest"
	if _, err := e.st.DB.Images().Create(e.ctx, alias); err != nil {
		t.Fatal(err)
	}
	b, err := e.export(nil, append(imgs, alias)...)
	if err != nil {
		t.Fatal(err)
	}
	a := expReadSaved(t, b)
	if len(a.items) != len(fxs) {
		t.Fatalf("manifest.json has %d entries, want %d: %+v", len(a.items), len(fxs), a.items)
	}
	host := images.DefaultPlatform()
	for i, fx := range fxs {
		_, m := expManifest(t, fx, host)
		tags := []string{fx.Ref}
		if i == 0 {
			tags = append(tags, alias.Name)
		}
		a.checkItem(t, fx, m, tags...)
	}
	repo := strings.TrimSuffix(fxs[1].Ref, ":v2")
	_, m := expManifest(t, fxs[1], host)
	if got := a.repos[repo]["v2"]; got != m.Config.Digest.Encoded() {
		t.Errorf("repositories[%s][v2] = %q, want the image ID %s", repo, got, m.Config.Digest.Encoded())
	}
	if again, err := e.export(nil, append(imgs, alias)...); err != nil || !bytes.Equal(again, b) {
		t.Fatalf("a second export differs (%v)", err)
	}

	// skopeo finds each image by its tag, with the config as exported
	// and every layer decompressed to its diff ID.
	p := filepath.Join(t.TempDir(), "out.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fx := range fxs {
		_, want := expManifest(t, fx, host)
		var cfg ocispec.Image
		json.Unmarshal(fx.Blobs[want.Config.Digest], &cfg)
		got, dir := expSkopeoDir(t, p, fx.Ref)
		if got.Config.Digest != want.Config.Digest {
			t.Errorf("skopeo read %s with config %s, want %s", fx.Ref, got.Config.Digest, want.Config.Digest)
		}
		var layers []digest.Digest
		for _, l := range got.Layers {
			layers = append(layers, l.Digest)
			data, err := os.ReadFile(filepath.Join(dir, l.Digest.Encoded()))
			if err != nil || digest.FromBytes(data) != l.Digest {
				t.Errorf("skopeo's layer %s of %s: %v", l.Digest, fx.Ref, err)
			}
		}
		if !slices.Equal(layers, cfg.RootFS.DiffIDs) {
			t.Errorf("skopeo read %s with layers %s, want the diff IDs %s", fx.Ref, layers, cfg.RootFS.DiffIDs)
		}
	}
}

// TestExportPlatform picks one platform of an index, and fails before
// writing when its layers are not in the store or it has none.
func TestExportPlatform(t *testing.T) {
	e := newExpEnv(t)
	fx := testutil.PushMultiPlatform(t, e.reg.Host, "exp/multi", "v1")
	img := e.pull(fx.Ref, pull.Options{})
	armv7 := ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	_, arm := expManifest(t, fx, armv7)

	b, err := e.export(images.Any(armv7), img)
	if !errors.Is(err, errdefs.ErrNotFound) || len(b) != 0 {
		t.Fatalf("Export(linux/arm/v7) of a host-only pull = %d bytes, %v; want nothing written and not found", len(b), err)
	}
	for _, want := range []string{`image "` + fx.Ref + `" (linux/arm/v7): 2 blobs are not in the content store`, arm.Layers[0].Digest.String(), arm.Layers[1].Digest.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	if b, err := e.export(images.Any(s390x), img); !errors.Is(err, errdefs.ErrNotFound) || len(b) != 0 ||
		!strings.Contains(err.Error(), "no manifest for linux/s390x; the image has linux/amd64, linux/arm64, linux/arm/v7") {
		t.Fatalf("Export(linux/s390x) = %d bytes, %v", len(b), err)
	}
	if b, err := e.export(nil); !errors.Is(err, errdefs.ErrInvalidArgument) || len(b) != 0 {
		t.Fatalf("Export of no images = %d bytes, %v", len(b), err)
	}

	img = e.pull(fx.Ref, pull.Options{Platforms: []ocispec.Platform{armv7}})
	b, err = e.export(images.Any(armv7), img)
	if err != nil {
		t.Fatal(err)
	}
	a := expReadSaved(t, b)
	if len(a.items) != 1 {
		t.Fatalf("manifest.json = %+v, want one entry", a.items)
	}
	a.checkItem(t, fx, arm, fx.Ref)
	if len(a.names) != 4+1+1+len(arm.Layers) {
		t.Fatalf("archive holds %q, want manifest.json, repositories, oci-layout, index.json, the manifest, the config and %d layers", a.names, len(arm.Layers))
	}
}
