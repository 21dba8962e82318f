package testutil

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/tartest"
)

// Docker's media types. They mirror the images package's constants, which
// testutil cannot import: the packages under test import testutil.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// Fixture is an image pushed to a registry and what a test needs to check
// the result of pulling it.
type Fixture struct {
	// Ref is the host/repo:tag it was pushed to.
	Ref string
	// Root is what the tag resolves to (index or manifest), MediaType set.
	Root ocispec.Descriptor
	// Blobs holds every blob and manifest pushed, by digest.
	Blobs map[digest.Digest][]byte
	// Tree is the root filesystem expected after applying all layers of
	// the image, or of its linux/amd64 image for an index (see ComputeTree).
	Tree map[string]TreeEntry
	// Platforms lists the images' platforms, in the index's order.
	Platforms []ocispec.Platform
}

// TreeEntry is one path of a root filesystem. Hardlinks are files with the
// content, mode and owner of their target.
type TreeEntry struct {
	Type     string      // "file", "dir", "symlink", "fifo", "char", "block" or "socket"
	Mode     fs.FileMode // permission bits with setuid, setgid and sticky; 0 for symlinks
	UID, GID int
	Content  string // of a file
	Link     string // target of a symlink
}

// fixtureLayer is a layer to push: its uncompressed tar, compressed as its
// media type says.
type fixtureLayer struct {
	tar       []byte
	mediaType string // ocispec.MediaTypeImageLayerGzip when empty
	createdBy string
}

// fixtureBuilder pushes the parts of one fixture and collects them.
type fixtureBuilder struct {
	t          testing.TB
	host, repo string
	fix        Fixture
}

func newFixture(t testing.TB, host, repo, tag string) *fixtureBuilder {
	return &fixtureBuilder{t: t, host: host, repo: repo,
		fix: Fixture{Ref: host + "/" + repo + ":" + tag, Blobs: map[digest.Digest][]byte{}}}
}

// blob pushes data and keeps it.
func (b *fixtureBuilder) blob(data []byte, mediaType string) ocispec.Descriptor {
	b.t.Helper()
	desc := PushBlob(b.t, b.host, b.repo, data, mediaType)
	b.fix.Blobs[desc.Digest] = data
	return desc
}

// manifest pushes a manifest or index under ref ("" = by digest) and keeps
// the exact bytes pushed.
func (b *fixtureBuilder) manifest(ref string, v any, mediaType string) ocispec.Descriptor {
	b.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatalf("encode %s: %v", mediaType, err)
	}
	// RawMessage is written as given (compacted, which it already is), so
	// the digest PushManifest computes is that of data.
	desc := PushManifest(b.t, b.host, b.repo, ref, json.RawMessage(data), mediaType)
	if desc.Digest != digest.FromBytes(data) {
		b.t.Fatalf("push %s to %s/%s: pushed %s, encoded %s", mediaType, b.host, b.repo, desc.Digest, digest.FromBytes(data))
	}
	b.fix.Blobs[desc.Digest] = data
	return desc
}

// image pushes a config, the layers and a manifest (under ref, "" = by
// digest), OCI or Docker schema 2, and returns the manifest's descriptor
// with its platform and the layers' uncompressed tars.
func (b *fixtureBuilder) image(ref string, p ocispec.Platform, docker bool, layers []fixtureLayer) (ocispec.Descriptor, [][]byte) {
	b.t.Helper()
	created := tartest.Epoch
	cfg := ocispec.Image{
		Created:  &created,
		Author:   "strata tests",
		Platform: p,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"/bin/sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	manifestType, configType := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	if docker {
		manifestType, configType = mediaTypeDockerManifest, mediaTypeDockerConfig
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType}
	var tars [][]byte
	for i, l := range layers {
		mt := l.mediaType
		if mt == "" {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		var data []byte
		switch {
		case strings.HasSuffix(mt, "gzip"):
			data = tartest.Gzip(l.tar)
		case strings.HasSuffix(mt, "zstd"):
			data = tartest.Zstd(l.tar)
		default:
			data = l.tar
		}
		m.Layers = append(m.Layers, b.blob(data, mt))
		tars = append(tars, l.tar)
		createdBy := l.createdBy
		if createdBy == "" {
			createdBy = fmt.Sprintf("/bin/sh -c #(nop) ADD layer-%d.tar /", i)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l.tar))
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: createdBy})
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		b.t.Fatalf("encode config: %v", err)
	}
	m.Config = b.blob(cb, configType)
	desc := b.manifest(ref, m, manifestType)
	desc.Platform = &p
	return desc, tars
}

// single pushes a one-platform linux/amd64 image under the fixture's tag.
func (b *fixtureBuilder) single(tag string, docker bool, layers []fixtureLayer) Fixture {
	b.t.Helper()
	p := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	desc, tars := b.image(tag, p, docker, layers)
	desc.Platform = nil
	b.fix.Root = desc
	b.fix.Tree = ComputeTree(tars)
	b.fix.Platforms = []ocispec.Platform{p}
	return b.fix
}

// PushWhiteoutImage pushes a linux/amd64 OCI image of three gzip layers
// exercising apply semantics: files, directories, a symlink, a hardlink,
// setuid and sticky modes, owners; a file and a directory deleted by
// .wh. entries, a directory made opaque by .wh..wh..opq and refilled, a
// file replaced by a directory and a directory by a file, and a path
// written twice in one layer.
func PushWhiteoutImage(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	const user = 1000
	l1 := tartest.Tar(
		tartest.Dir("bin"),
		tartest.Entry{Name: "bin/tool", Body: "#!/bin/sh\necho tool\n", Mode: 0o755},
		tartest.Symlink("bin/sh", "tool"),
		tartest.Link("bin/tool-link", "bin/tool"),
		tartest.Dir("etc"),
		tartest.File("etc/hostname", "fixture\n"),
		tartest.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		tartest.Dir("home"),
		tartest.Entry{Name: "home/user", Type: tar.TypeDir, Mode: 0o750, UID: user, GID: user},
		tartest.Entry{Name: "home/user/.profile", Body: "PS1='$ '\n", Mode: 0o600, UID: user, GID: user},
		tartest.Dir("opt"),
		tartest.File("opt/thing", "a file, a directory in layer 2\n"),
		tartest.Dir("srv"),
		tartest.Dir("srv/old"),
		tartest.File("srv/old/data", "deleted with its directory in layer 3\n"),
		tartest.Entry{Name: "tmp", Type: tar.TypeDir, Mode: 0o1777},
		tartest.File("tmp/scratch", "deleted in layer 2\n"),
		tartest.Dir("usr"),
		tartest.Dir("usr/bin"),
		tartest.Entry{Name: "usr/bin/su", Body: "#!/bin/sh\nexec \"$@\"\n", Mode: 0o4755},
		tartest.Dir("var"),
		tartest.Dir("var/cache"),
		tartest.File("var/cache/a", "hidden by the opaque directory in layer 2\n"),
		tartest.Dir("var/cache/sub"),
		tartest.File("var/cache/sub/b", "hidden by the opaque directory in layer 2\n"),
		tartest.Dir("var/log"),
		tartest.File("var/log/old.log", "a directory, a file in layer 3\n"),
	)
	l2 := tartest.Tar(
		tartest.Dir("etc"),
		tartest.File("etc/.wh.hostname", ""),
		tartest.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
		tartest.Dir("opt"),
		tartest.Dir("opt/thing"),
		tartest.File("opt/thing/inside", "now a directory\n"),
		tartest.Entry{Name: "tmp", Type: tar.TypeDir, Mode: 0o1777},
		tartest.File("tmp/.wh.scratch", ""),
		tartest.Dir("var"),
		tartest.Dir("var/cache"),
		tartest.File("var/cache/.wh..wh..opq", ""),
		tartest.File("var/cache/new", "refilled\n"),
	)
	l3 := tartest.Tar(
		tartest.Dir("etc"),
		tartest.File("etc/motd", "first\n"),
		tartest.File("etc/motd", "second\n"),
		tartest.Entry{Name: "home/user/.profile", Body: "PS1='% '\n", Mode: 0o640, UID: user, GID: user},
		tartest.Dir("srv"),
		tartest.File("srv/.wh.old", ""),
		tartest.Dir("var"),
		tartest.File("var/log", "a directory replaced by a file\n"),
	)
	b := newFixture(t, host, repo, tag)
	return b.single(tag, false, []fixtureLayer{
		{tar: l1, createdBy: "/bin/sh -c #(nop) ADD base.tar /"},
		{tar: l2, createdBy: "/bin/sh -c rm /etc/hostname /tmp/scratch && rm -rf /var/cache/* && echo refilled > /var/cache/new"},
		{tar: l3, createdBy: "/bin/sh -c rm -rf /srv/old && rm -rf /var/log && echo second > /etc/motd"},
	})
}

// PushMultiPlatform pushes an OCI index of linux/amd64 (two layers),
// linux/arm64/v8 (one) and linux/arm/v7 (two) images, each with its own
// /platform file. Tree is linux/amd64's.
func PushMultiPlatform(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	platforms := []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	var manifests []ocispec.Descriptor
	for i, p := range platforms {
		name := path.Join(p.OS, p.Architecture, p.Variant)
		base := tartest.Tar(tartest.Dir("etc"), tartest.File("etc/os-release", "ID=strata-fixture\nPLATFORM="+name+"\n"))
		top := tartest.Tar(tartest.File("platform", name+"\n"))
		layers := []fixtureLayer{{tar: base}, {tar: top}}
		if i == 1 {
			layers = []fixtureLayer{{tar: tartest.Tar(tartest.Dir("etc"), tartest.File("etc/os-release", "ID=strata-fixture\n"),
				tartest.File("platform", name+"\n"))}}
		}
		desc, tars := b.image("", p, false, layers)
		if i == 0 {
			b.fix.Tree = ComputeTree(tars)
		}
		manifests = append(manifests, desc)
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	b.fix.Root = b.manifest(tag, idx, ocispec.MediaTypeImageIndex)
	b.fix.Platforms = platforms
	return b.fix
}

// PushDockerSchema2 pushes a linux/amd64 Docker schema 2 manifest with a
// Docker config and two gzip layers.
func PushDockerSchema2(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	return b.single(tag, true, dockerLayers("amd64"))
}

// PushDockerManifestList pushes a Docker manifest list of linux/amd64 and
// linux/arm64 Docker schema 2 manifests. Tree is linux/amd64's.
func PushDockerManifestList(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	platforms := []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	var manifests []ocispec.Descriptor
	for i, p := range platforms {
		desc, tars := b.image("", p, true, dockerLayers(p.Architecture))
		if i == 0 {
			b.fix.Tree = ComputeTree(tars)
		}
		manifests = append(manifests, desc)
	}
	list := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaTypeDockerManifestList, Manifests: manifests}
	b.fix.Root = b.manifest(tag, list, mediaTypeDockerManifestList)
	b.fix.Platforms = platforms
	return b.fix
}

// dockerLayers are two Docker gzip layers for arch.
func dockerLayers(arch string) []fixtureLayer {
	return []fixtureLayer{
		{tar: tartest.Tar(tartest.Dir("etc"), tartest.File("etc/os-release", "ID=strata-fixture\n"),
			tartest.Dir("bin"), tartest.Entry{Name: "bin/hello", Body: "#!/bin/sh\necho hello\n", Mode: 0o755}),
			mediaType: mediaTypeDockerLayerGzip},
		{tar: tartest.Tar(tartest.File("platform", "linux/"+arch+"\n"), tartest.Symlink("bin/hi", "hello")),
			mediaType: mediaTypeDockerLayerGzip, createdBy: "/bin/sh -c ln -s hello /bin/hi"},
	}
}

// PushZstd pushes a linux/amd64 OCI image of two zstd layers with an
// uncompressed tar layer between them.
func PushZstd(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	return b.single(tag, false, []fixtureLayer{
		{tar: tartest.Tar(tartest.Dir("etc"), tartest.File("etc/os-release", "ID=strata-fixture\n"), tartest.Dir("data"),
			tartest.File("data/zstd-1", strings.Repeat("compressed with zstd\n", 200))),
			mediaType: ocispec.MediaTypeImageLayerZstd},
		{tar: tartest.Tar(tartest.Dir("data"), tartest.File("data/plain", "not compressed at all\n")),
			mediaType: ocispec.MediaTypeImageLayer},
		{tar: tartest.Tar(tartest.Dir("data"), tartest.File("data/zstd-2", "zstd again\n"), tartest.File("data/.wh.plain", "")),
			mediaType: ocispec.MediaTypeImageLayerZstd},
	})
}

// PushNonDistributable pushes a linux/amd64 OCI image of a gzip layer and
// a non-distributable gzip layer. The latter's blob is pushed too and its
// descriptor lists no URLs: the registry checks such a layer's presence
// then, while with URLs it wants them allowed in its configuration
// (validation.manifests.urls), which it is not by default.
func PushNonDistributable(t testing.TB, host, repo, tag string) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	return b.single(tag, false, []fixtureLayer{
		{tar: tartest.Tar(tartest.Dir("etc"), tartest.File("etc/os-release", "ID=strata-fixture\n"))},
		{tar: tartest.Tar(tartest.Dir("licensed"), tartest.File("licensed/blob", "may not be redistributed\n")),
			mediaType: ocispec.MediaTypeImageLayerNonDistributableGzip}, //nolint:staticcheck // the deprecated type is what we test
	})
}

// PushRandomImage pushes a linux/amd64 OCI image of layers gzip layers,
// each holding one file of layerSize incompressible bytes (so its blob is
// a little larger), for transfer and resume tests. The bytes come from a
// seed made of the layer's index and layerSize: the same arguments give
// the same digests.
func PushRandomImage(t testing.TB, host, repo, tag string, layers int, layerSize int64) Fixture {
	t.Helper()
	b := newFixture(t, host, repo, tag)
	var ls []fixtureLayer
	for i := range layers {
		var seed [32]byte
		copy(seed[:], "strata random layer")
		binary.BigEndian.PutUint32(seed[20:], uint32(i))
		binary.BigEndian.PutUint64(seed[24:], uint64(layerSize))
		data := make([]byte, layerSize)
		rand.NewChaCha8(seed).Read(data)
		ls = append(ls, fixtureLayer{
			tar:       tartest.Tar(tartest.Dir("random"), tartest.File(fmt.Sprintf("random/layer-%d", i), string(data))),
			createdBy: fmt.Sprintf("/bin/sh -c head -c %d /dev/urandom > /random/layer-%d", layerSize, i),
		})
	}
	return b.single(tag, false, ls)
}

// ComputeTree returns the root filesystem that applying layers (uncompressed
// tars, lowest first) gives, by a model independent of strata's archive
// package (image-spec layer.md): a .wh.NAME entry deletes NAME and its
// subtree from the lower layers, .wh..wh..opq hides all the lower layers
// had in its directory, later entries replace earlier ones (a directory
// over a directory keeps its children), missing parents are 0755 root
// directories. Keys are absolute paths ("/etc/passwd"); "/" is left out.
// It panics on a tar it cannot read or a hardlink to nothing: layers are
// test fixtures.
func ComputeTree(layers [][]byte) map[string]TreeEntry {
	tree := map[string]TreeEntry{}
	for i, layer := range layers {
		type entry struct {
			hdr  *tar.Header
			name string
			body []byte
		}
		var entries []entry
		tr := tar.NewReader(bytes.NewReader(layer))
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				panic(fmt.Sprintf("ComputeTree: layer %d: %v", i, err))
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				panic(fmt.Sprintf("ComputeTree: layer %d: %s: %v", i, hdr.Name, err))
			}
			entries = append(entries, entry{hdr, path.Clean("/" + hdr.Name), body})
		}
		// Whiteouts only hide what lower layers have: apply them before
		// the layer's own entries.
		for _, e := range entries {
			dir, base := path.Split(e.name)
			switch {
			case base == ".wh..wh..opq":
				removeUnder(tree, dir)
			case strings.HasPrefix(base, ".wh."):
				removeTree(tree, dir+strings.TrimPrefix(base, ".wh."))
			}
		}
		for _, e := range entries {
			if e.name == "/" || strings.HasPrefix(path.Base(e.name), ".wh.") {
				continue
			}
			makeParents(tree, path.Dir(e.name))
			h := e.hdr
			te := TreeEntry{Mode: tarMode(h.Mode), UID: h.Uid, GID: h.Gid}
			switch h.Typeflag {
			case tar.TypeReg, tar.TypeRegA:
				te.Type, te.Content = "file", string(e.body)
			case tar.TypeDir:
				te.Type = "dir"
			case tar.TypeSymlink:
				te.Type, te.Link, te.Mode = "symlink", h.Linkname, 0
			case tar.TypeLink:
				target, ok := tree[path.Clean("/"+h.Linkname)]
				if !ok || target.Type != "file" {
					panic(fmt.Sprintf("ComputeTree: layer %d: hardlink %s to %s, which is no file", i, h.Name, h.Linkname))
				}
				te = target
			case tar.TypeFifo:
				te.Type = "fifo"
			case tar.TypeChar:
				te.Type = "char"
			case tar.TypeBlock:
				te.Type = "block"
			default:
				panic(fmt.Sprintf("ComputeTree: layer %d: %s: tar type %q", i, h.Name, h.Typeflag))
			}
			if old, ok := tree[e.name]; !ok || old.Type != "dir" || te.Type != "dir" {
				removeTree(tree, e.name)
			}
			tree[e.name] = te
		}
	}
	return tree
}

// makeParents makes dir and its missing parents directories, replacing
// what is no directory.
func makeParents(tree map[string]TreeEntry, dir string) {
	if dir == "/" {
		return
	}
	makeParents(tree, path.Dir(dir))
	if old, ok := tree[dir]; ok && old.Type == "dir" {
		return
	}
	removeTree(tree, dir)
	tree[dir] = TreeEntry{Type: "dir", Mode: 0o755}
}

// removeTree deletes name and everything under it.
func removeTree(tree map[string]TreeEntry, name string) {
	delete(tree, name)
	removeUnder(tree, name)
}

// removeUnder deletes everything under dir, keeping dir.
func removeUnder(tree map[string]TreeEntry, dir string) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for k := range tree {
		if strings.HasPrefix(k, prefix) {
			delete(tree, k)
		}
	}
}

// tarMode converts a tar header's mode to the bits a TreeEntry keeps.
func tarMode(m int64) fs.FileMode {
	mode := fs.FileMode(m) & fs.ModePerm
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// ReadTree walks the root filesystem at dir (a mounted snapshot, or a
// directory a test built) and returns it in ComputeTree's form: symlinks
// are not followed, dir itself is left out.
func ReadTree(t testing.TB, dir string) map[string]TreeEntry {
	t.Helper()
	tree := map[string]TreeEntry{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		te := TreeEntry{Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			te.UID, te.GID = int(st.Uid), int(st.Gid)
		}
		switch m := info.Mode(); {
		case m.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			te.Type, te.Content = "file", string(b)
		case m.IsDir():
			te.Type = "dir"
		case m&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			te.Type, te.Link, te.Mode = "symlink", link, 0
		case m&fs.ModeNamedPipe != 0:
			te.Type = "fifo"
		case m&fs.ModeCharDevice != 0:
			te.Type = "char"
		case m&fs.ModeDevice != 0:
			te.Type = "block"
		case m&fs.ModeSocket != 0:
			te.Type = "socket"
		default:
			return fmt.Errorf("%s: unknown file type %s", p, m.Type())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		tree["/"+filepath.ToSlash(rel)] = te
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", dir, err)
	}
	return tree
}

// DiffTrees returns the differences between two trees, one line per path
// in path order ("/etc/motd: content \"a\\n\", want \"b\\n\""); none when
// they are equal.
func DiffTrees(want, got map[string]TreeEntry) []string {
	var names []string
	for name := range want {
		names = append(names, name)
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var diffs []string
	for _, name := range names {
		w, inWant := want[name]
		g, inGot := got[name]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %s", name, describeEntry(w)))
		case !inWant:
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", name, describeEntry(g)))
		case g.Type != w.Type:
			diffs = append(diffs, fmt.Sprintf("%s: %s, want %s", name, describeEntry(g), describeEntry(w)))
		default:
			if g.Mode != w.Mode {
				diffs = append(diffs, fmt.Sprintf("%s: mode %04o, want %04o", name, unixMode(g.Mode), unixMode(w.Mode)))
			}
			if g.UID != w.UID || g.GID != w.GID {
				diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", name, g.UID, g.GID, w.UID, w.GID))
			}
			if g.Content != w.Content {
				diffs = append(diffs, fmt.Sprintf("%s: content %s, want %s", name, describeContent(g.Content), describeContent(w.Content)))
			}
			if g.Link != w.Link {
				diffs = append(diffs, fmt.Sprintf("%s: link to %q, want %q", name, g.Link, w.Link))
			}
		}
	}
	return diffs
}

// describeEntry says what an entry is in a few words.
func describeEntry(e TreeEntry) string {
	s := fmt.Sprintf("%s %04o %d:%d", e.Type, unixMode(e.Mode), e.UID, e.GID)
	switch e.Type {
	case "file":
		s += " " + describeContent(e.Content)
	case "symlink":
		s += fmt.Sprintf(" to %q", e.Link)
	}
	return s
}

// describeContent quotes short content and summarises long content.
func describeContent(c string) string {
	if len(c) <= 64 {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("(%d bytes, %.19s…)", len(c), digest.FromString(c))
}

// unixMode gives m's permission bits as chmod takes them.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}
