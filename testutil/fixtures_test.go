package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
)

// TestFixtures pushes every fixture to a real registry and checks what
// comes back against what the fixture says, as a puller would see it.
func TestFixtures(t *testing.T) {
	reg := StartRegistry(t, RegistryConfig{})
	tests := []struct {
		name      string
		push      func(t testing.TB, host, repo, tag string) Fixture
		rootType  string
		layerType []string // of the first (linux/amd64) image
		check     func(t *testing.T, fix Fixture, m ocispec.Manifest)
	}{
		{name: "whiteout", push: PushWhiteoutImage, rootType: ocispec.MediaTypeImageManifest,
			layerType: []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip}},
		{name: "multi", push: PushMultiPlatform, rootType: ocispec.MediaTypeImageIndex,
			layerType: []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip},
			check: func(t *testing.T, fix Fixture, _ ocispec.Manifest) {
				if got := fix.Tree["/platform"].Content; got != "linux/amd64\n" {
					t.Errorf("Tree[/platform] = %q, want linux/amd64", got)
				}
			}},
		{name: "docker", push: PushDockerSchema2, rootType: mediaTypeDockerManifest,
			layerType: []string{mediaTypeDockerLayerGzip, mediaTypeDockerLayerGzip}},
		{name: "dockerlist", push: PushDockerManifestList, rootType: mediaTypeDockerManifestList,
			layerType: []string{mediaTypeDockerLayerGzip, mediaTypeDockerLayerGzip}},
		{name: "zstd", push: PushZstd, rootType: ocispec.MediaTypeImageManifest,
			layerType: []string{ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerZstd},
			check: func(t *testing.T, fix Fixture, _ ocispec.Manifest) {
				if _, ok := fix.Tree["/data/plain"]; ok {
					t.Error("Tree has /data/plain, which layer 3 deletes")
				}
			}},
		{name: "nondistributable", push: PushNonDistributable, rootType: ocispec.MediaTypeImageManifest,
			layerType: []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerNonDistributableGzip}, //nolint:staticcheck // what the fixture holds
			check: func(t *testing.T, fix Fixture, m ocispec.Manifest) {
				if l := m.Layers[1]; len(l.URLs) != 0 {
					t.Errorf("non-distributable layer URLs = %q, want none", l.URLs)
				}
			}},
		{name: "random", rootType: ocispec.MediaTypeImageManifest,
			push: func(t testing.TB, host, repo, tag string) Fixture {
				return PushRandomImage(t, host, repo, tag, 3, 1<<20)
			},
			layerType: []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip},
			check: func(t *testing.T, fix Fixture, m ocispec.Manifest) {
				for i, l := range m.Layers {
					if l.Size < 1<<20 {
						t.Errorf("layer %d is %d bytes, want 1 MiB or more: the content must not compress", i, l.Size)
					}
				}
				if len(fix.Tree["/random/layer-2"].Content) != 1<<20 {
					t.Errorf("Tree[/random/layer-2] has %d bytes, want 1 MiB", len(fix.Tree["/random/layer-2"].Content))
				}
				again := PushRandomImage(t, reg.Host, "fixtures/random-again", "v1", 3, 1<<20)
				if again.Root.Digest != fix.Root.Digest {
					t.Errorf("pushed twice: manifest %s, then %s; want stable digests", fix.Root.Digest, again.Root.Digest)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := "fixtures/" + tt.name
			fix := tt.push(t, reg.Host, repo, "v1")
			if fix.Ref != reg.Host+"/"+repo+":v1" {
				t.Errorf("Ref = %q", fix.Ref)
			}
			if fix.Root.MediaType != tt.rootType {
				t.Errorf("Root.MediaType = %q, want %q", fix.Root.MediaType, tt.rootType)
			}
			m := checkFixture(t, reg.Host, repo, fix)
			var types []string
			for _, l := range m.Layers {
				types = append(types, l.MediaType)
			}
			if !reflect.DeepEqual(types, tt.layerType) {
				t.Errorf("layer media types = %q, want %q", types, tt.layerType)
			}
			if tt.check != nil {
				tt.check(t, fix, m)
			}
		})
	}
}

// checkFixture fetches the tag and everything under it from the registry,
// compares it with fix.Blobs, checks each config against its layers and
// the platforms, and recomputes Tree. It returns the first manifest.
func checkFixture(t *testing.T, host, repo string, fix Fixture) ocispec.Manifest {
	t.Helper()
	seen := map[digest.Digest]bool{}
	body, dg := FetchManifest(t, host, repo, "v1")
	if dg != fix.Root.Digest.String() || !bytes.Equal(body, fix.Blobs[fix.Root.Digest]) || int64(len(body)) != fix.Root.Size {
		t.Fatalf("tag resolves to %s (%d bytes), fixture's root is %s (%d)", dg, len(body), fix.Root.Digest, fix.Root.Size)
	}
	seen[fix.Root.Digest] = true
	var doc struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.MediaType != fix.Root.MediaType {
		t.Errorf("root's mediaType = %q, descriptor says %q", doc.MediaType, fix.Root.MediaType)
	}
	manifests := []ocispec.Descriptor{fix.Root}
	if len(doc.Manifests) > 0 {
		manifests = doc.Manifests
	}
	if len(manifests) != len(fix.Platforms) {
		t.Fatalf("%d manifests, %d platforms", len(manifests), len(fix.Platforms))
	}
	var first ocispec.Manifest
	for i, desc := range manifests {
		b, dg := FetchManifest(t, host, repo, desc.Digest.String())
		if dg != desc.Digest.String() || !bytes.Equal(b, fix.Blobs[desc.Digest]) {
			t.Fatalf("manifest %s: fetched %s, not the pushed bytes", desc.Digest, dg)
		}
		seen[desc.Digest] = true
		if desc.Platform != nil && !reflect.DeepEqual(*desc.Platform, fix.Platforms[i]) {
			t.Errorf("manifest %d platform %+v, want %+v", i, *desc.Platform, fix.Platforms[i])
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.SchemaVersion != 2 || m.MediaType != desc.MediaType {
			t.Errorf("manifest %s: schemaVersion %d, mediaType %q; listed as %q", desc.Digest, m.SchemaVersion, m.MediaType, desc.MediaType)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(fetchBlob(t, host, repo, m.Config, fix), &cfg); err != nil {
			t.Fatalf("config %s: %v", m.Config.Digest, err)
		}
		seen[m.Config.Digest] = true
		if !reflect.DeepEqual(cfg.Platform, fix.Platforms[i]) {
			t.Errorf("config platform %+v, want %+v", cfg.Platform, fix.Platforms[i])
		}
		if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(m.Layers) || len(cfg.History) != len(m.Layers) {
			t.Fatalf("config: rootfs %+v, %d history entries, for %d layers", cfg.RootFS, len(cfg.History), len(m.Layers))
		}
		var tars [][]byte
		for j, l := range m.Layers {
			tar := uncompressLayer(t, l.MediaType, fetchBlob(t, host, repo, l, fix))
			seen[l.Digest] = true
			if digest.FromBytes(tar) != cfg.RootFS.DiffIDs[j] {
				t.Errorf("layer %d: diff ID %s, config says %s", j, digest.FromBytes(tar), cfg.RootFS.DiffIDs[j])
			}
			if cfg.History[j].CreatedBy == "" || cfg.History[j].EmptyLayer {
				t.Errorf("layer %d: history %+v", j, cfg.History[j])
			}
			tars = append(tars, tar)
		}
		if i == 0 {
			first = m
			if d := DiffTrees(fix.Tree, ComputeTree(tars)); len(d) > 0 || len(fix.Tree) == 0 {
				t.Errorf("Tree differs from the first image's layers (%d entries):\n%s", len(fix.Tree), strings.Join(d, "\n"))
			}
		}
	}
	for dg := range fix.Blobs {
		if !seen[dg] {
			t.Errorf("Blobs holds %s, which nothing under the tag refers to", dg)
		}
	}
	return first
}

// fetchBlob GETs desc's blob and checks it against the pushed bytes.
func fetchBlob(t *testing.T, host, repo string, desc ocispec.Descriptor, fix Fixture) []byte {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || digest.FromBytes(b) != desc.Digest || int64(len(b)) != desc.Size {
		t.Fatalf("blob %s: %s, %d bytes, %v", desc.Digest, resp.Status, len(b), err)
	}
	if !bytes.Equal(b, fix.Blobs[desc.Digest]) {
		t.Fatalf("blob %s is not in the fixture's Blobs", desc.Digest)
	}
	return b
}

// uncompressLayer undoes a layer's compression, going by its media type.
func uncompressLayer(t *testing.T, mediaType string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(mediaType, "gzip"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", mediaType, err)
		}
		r = zr
	case strings.HasSuffix(mediaType, "zstd"):
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", mediaType, err)
		}
		defer zr.Close()
		r = zr
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("uncompress %s: %v", mediaType, err)
	}
	return out
}

// TestWhiteoutTree writes down by hand what the whiteout fixture's layers
// give.
func TestWhiteoutTree(t *testing.T) {
	reg := StartRegistry(t, RegistryConfig{})
	fix := PushWhiteoutImage(t, reg.Host, "fixtures/whiteout", "v1")
	dir := func(mode fs.FileMode) TreeEntry { return TreeEntry{Type: "dir", Mode: mode} }
	file := func(content string) TreeEntry { return TreeEntry{Type: "file", Mode: 0o644, Content: content} }
	tool := TreeEntry{Type: "file", Mode: 0o755, Content: "#!/bin/sh\necho tool\n"}
	want := map[string]TreeEntry{
		"/bin":                dir(0o755),
		"/bin/tool":           tool,
		"/bin/tool-link":      tool,
		"/bin/sh":             {Type: "symlink", Link: "tool"},
		"/etc":                dir(0o755),
		"/etc/passwd":         file("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
		"/etc/motd":           file("second\n"),
		"/home":               dir(0o755),
		"/home/user":          {Type: "dir", Mode: 0o750, UID: 1000, GID: 1000},
		"/home/user/.profile": {Type: "file", Mode: 0o640, UID: 1000, GID: 1000, Content: "PS1='% '\n"},
		"/opt":                dir(0o755),
		"/opt/thing":          dir(0o755),
		"/opt/thing/inside":   file("now a directory\n"),
		"/srv":                dir(0o755),
		"/tmp":                dir(fs.ModeSticky | 0o777),
		"/usr":                dir(0o755),
		"/usr/bin":            dir(0o755),
		"/usr/bin/su":         {Type: "file", Mode: fs.ModeSetuid | 0o755, Content: "#!/bin/sh\nexec \"$@\"\n"},
		"/var":                dir(0o755),
		"/var/cache":          dir(0o755),
		"/var/cache/new":      file("refilled\n"),
		"/var/log":            file("a directory replaced by a file\n"),
	}
	if d := DiffTrees(want, fix.Tree); len(d) > 0 {
		t.Errorf("whiteout fixture's Tree:\n%s", strings.Join(d, "\n"))
	}
}

// TestComputeTree covers the apply rules one by one.
func TestComputeTree(t *testing.T) {
	f := func(content string) TreeEntry { return TreeEntry{Type: "file", Mode: 0o644, Content: content} }
	d := TreeEntry{Type: "dir", Mode: 0o755}
	tests := []struct {
		name   string
		layers [][]byte
		want   map[string]TreeEntry
	}{
		{"implicit parents", [][]byte{tartest.Tar(tartest.File("a/b/c", "x"))},
			map[string]TreeEntry{"/a": d, "/a/b": d, "/a/b/c": f("x")}},
		{"leading ./ and root entry", [][]byte{tartest.Tar(tartest.Dir("./"), tartest.Dir("./a"), tartest.File("./a/f", "x"), tartest.File("/g", "y"))},
			map[string]TreeEntry{"/a": d, "/a/f": f("x"), "/g": f("y")}},
		{"whiteout hides lower layers only", [][]byte{
			tartest.Tar(tartest.File("a", "lower")),
			tartest.Tar(tartest.File("b", "same layer"), tartest.File(".wh.a", ""), tartest.File(".wh.b", "")),
		}, map[string]TreeEntry{"/b": f("same layer")}},
		{"whiteout then recreate in one layer", [][]byte{
			tartest.Tar(tartest.Dir("d"), tartest.File("d/old", "x")),
			tartest.Tar(tartest.File("d", "now a file"), tartest.File(".wh.d", "")),
		}, map[string]TreeEntry{"/d": f("now a file")}},
		{"opaque keeps the directory and the layer's own entries", [][]byte{
			tartest.Tar(tartest.Entry{Name: "d", Type: '5', Mode: 0o700}, tartest.File("d/a", "x"), tartest.Dir("d/sub"), tartest.File("d/sub/b", "y"), tartest.File("e", "z")),
			tartest.Tar(tartest.File("d/new", "n"), tartest.File("d/.wh..wh..opq", "")),
		}, map[string]TreeEntry{"/d": {Type: "dir", Mode: 0o700}, "/d/new": f("n"), "/e": f("z")}},
		{"directory over directory keeps children", [][]byte{
			tartest.Tar(tartest.Dir("d"), tartest.File("d/a", "x")),
			tartest.Tar(tartest.Entry{Name: "d", Type: '5', Mode: 0o711, UID: 7, GID: 8}),
		}, map[string]TreeEntry{"/d": {Type: "dir", Mode: 0o711, UID: 7, GID: 8}, "/d/a": f("x")}},
		{"file over directory drops children", [][]byte{
			tartest.Tar(tartest.Dir("d"), tartest.File("d/a", "x")),
			tartest.Tar(tartest.File("d", "f")),
		}, map[string]TreeEntry{"/d": f("f")}},
		{"entry under a file makes it a directory", [][]byte{
			tartest.Tar(tartest.File("d", "f")),
			tartest.Tar(tartest.File("d/a", "x")),
		}, map[string]TreeEntry{"/d": d, "/d/a": f("x")}},
		{"hardlink copies its target, later changes do not", [][]byte{
			tartest.Tar(tartest.Entry{Name: "a", Body: "x", Mode: 0o600, UID: 5}, tartest.Link("b", "a")),
			tartest.Tar(tartest.File("a", "changed")),
		}, map[string]TreeEntry{"/a": f("changed"), "/b": {Type: "file", Mode: 0o600, UID: 5, Content: "x"}}},
		{"special files", [][]byte{tartest.Tar(
			tartest.Entry{Name: "p", Type: '6', Mode: 0o600},
			tartest.Entry{Name: "c", Type: '3', Major: 1, Minor: 3, Mode: 0o666},
			tartest.Entry{Name: "s", Type: '2', Link: "/p"},
			tartest.Entry{Name: "g", Mode: 0o2755, Body: "sgid"},
		)}, map[string]TreeEntry{"/p": {Type: "fifo", Mode: 0o600}, "/c": {Type: "char", Mode: 0o666},
			"/s": {Type: "symlink", Link: "/p"}, "/g": {Type: "file", Mode: fs.ModeSetgid | 0o755, Content: "sgid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := DiffTrees(tt.want, ComputeTree(tt.layers)); len(d) > 0 {
				t.Errorf("ComputeTree:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestReadTree builds a tree with os calls (as root: it sets owners),
// reads it back and diffs it after changes.
func TestReadTree(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(root, name) }
	must(os.Mkdir(p("etc"), 0o755))
	must(os.WriteFile(p("etc/passwd"), []byte("root:x:0:0\n"), 0o644))
	must(os.Link(p("etc/passwd"), p("etc/passwd-link")))
	must(os.Symlink("passwd", p("etc/pw")))
	must(os.Mkdir(p("home"), 0o750))
	must(os.Chown(p("home"), 1000, 1001))
	must(os.WriteFile(p("su"), []byte("#!"), 0o755))
	must(os.Chmod(p("su"), 0o755|fs.ModeSetuid))
	must(os.Mkdir(p("tmp"), 0o777))
	must(os.Chmod(p("tmp"), 0o777|fs.ModeSticky))
	must(syscall.Mkfifo(p("tmp/fifo"), 0o600))
	must(os.Chmod(p("tmp/fifo"), 0o600))
	must(os.Chmod(p("etc/passwd"), 0o644))
	must(os.Chmod(p("home"), 0o750))

	want := map[string]TreeEntry{
		"/etc":             {Type: "dir", Mode: 0o755},
		"/etc/passwd":      {Type: "file", Mode: 0o644, Content: "root:x:0:0\n"},
		"/etc/passwd-link": {Type: "file", Mode: 0o644, Content: "root:x:0:0\n"},
		"/etc/pw":          {Type: "symlink", Link: "passwd"},
		"/home":            {Type: "dir", Mode: 0o750, UID: 1000, GID: 1001},
		"/su":              {Type: "file", Mode: fs.ModeSetuid | 0o755, Content: "#!"},
		"/tmp":             {Type: "dir", Mode: fs.ModeSticky | 0o777},
		"/tmp/fifo":        {Type: "fifo", Mode: 0o600},
	}
	if d := DiffTrees(want, ReadTree(t, root)); len(d) > 0 {
		t.Fatalf("ReadTree:\n%s", strings.Join(d, "\n"))
	}

	must(os.WriteFile(p("etc/passwd"), []byte("changed\n"), 0o644))
	must(os.Chmod(p("su"), 0o700))
	must(os.Chown(p("home"), 0, 0))
	must(os.Remove(p("etc/pw")))
	must(os.Symlink("elsewhere", p("etc/pw")))
	must(os.Remove(p("tmp/fifo")))
	must(os.Mkdir(p("tmp/fifo"), 0o755))
	must(os.Chmod(p("tmp/fifo"), 0o755))
	must(os.WriteFile(p("extra"), bytes.Repeat([]byte("x"), 100), 0o600))
	must(os.Chmod(p("extra"), 0o600))
	must(os.Remove(p("etc/passwd-link")))
	wantDiff := []string{
		`/etc/passwd: content "changed\n", want "root:x:0:0\n"`,
		`/etc/passwd-link: missing, want file 0644 0:0 "root:x:0:0\n"`,
		`/etc/pw: link to "elsewhere", want "passwd"`,
		"/extra: unexpected file 0600 0:0 (100 bytes, " + digest.FromBytes(bytes.Repeat([]byte("x"), 100)).String()[:19] + "…)",
		`/home: owner 0:0, want 1000:1001`,
		`/su: mode 0700, want 4755`,
		`/tmp/fifo: dir 0755 0:0, want fifo 0600 0:0`,
	}
	if got := DiffTrees(want, ReadTree(t, root)); !reflect.DeepEqual(got, wantDiff) {
		t.Errorf("DiffTrees after changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDiff, "\n"))
	}
}
