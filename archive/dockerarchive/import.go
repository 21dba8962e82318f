package dockerarchive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/internal/imageimport"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

// This file reads what `docker save` (and containers/image's docker-archive,
// which podman and skopeo write) put in an archive (ImportFormat); the
// single pass over the tar, which both formats share, is
// archive/internal/imageimport's, and ocilayout.Import runs it with both:
//
//	manifest.json           [{"Config": …, "RepoTags": […], "Layers": […]}]
//	repositories            legacy tags (ignored: manifest.json has them)
//	<hex>.json              a config, named by its digest (Docker before 25)
//	<hex>.tar               an uncompressed layer, named by its digest (containers/image)
//	<id>/layer.tar          an uncompressed layer (Docker), or a symlink to one
//	<id>/json, <id>/VERSION legacy metadata (ignored)
//	blobs/sha256/<hex>      Docker 25 and later: an OCI image layout beside manifest.json

// LoadManifestFile is the name of the list of images in a `docker save`
// archive.
const LoadManifestFile = "manifest.json"

// LoadItem is one image of manifest.json: paths inside the archive of its
// config and its layers, bottom first, and the names it was saved under.
type LoadItem struct {
	Config   string
	RepoTags []string
	Layers   []string
	// LayerSources describes, by diff ID, the foreign layers that the
	// archive does not hold (Windows base layers).
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

// ParseLoadManifest parses manifest.json. It returns errdefs.ErrInvalidArgument
// when it is not a list of images, is empty or an image lacks its config.
func ParseLoadManifest(b []byte) ([]LoadItem, error) {
	var items []LoadItem
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", LoadManifestFile, err, errdefs.ErrInvalidArgument)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s lists no images: %w", LoadManifestFile, errdefs.ErrInvalidArgument)
	}
	for i, it := range items {
		if it.Config == "" {
			return nil, fmt.Errorf("%s: image %d has no Config: %w", LoadManifestFile, i, errdefs.ErrInvalidArgument)
		}
	}
	return items, nil
}

// Names returns the RepoTags of it normalised as strata names images
// ("alpine:3.20" is docker.io/library/alpine:3.20). A tag that is no
// reference is errdefs.ErrInvalidArgument naming it.
func (it LoadItem) Names() ([]string, error) {
	var names []string
	for _, tag := range it.RepoTags {
		r, err := reference.Parse(tag)
		if err != nil {
			return nil, fmt.Errorf("%s: RepoTags: %w", LoadManifestFile, err)
		}
		names = append(names, r.String())
	}
	return names, nil
}

// LegacyBlobName reports whether name, a cleaned path inside an archive,
// is where a `docker save` archive keeps a config or a layer outside
// blobs/, and the digest its name promises: "<hex>.json" and "<hex>.tar"
// at the top are named by their SHA-256, "<id>/layer.tar" promises none
// (its digest is computed).
func LegacyBlobName(name string) (want digest.Digest, ok bool) {
	if dir, file := path.Split(name); dir != "" {
		return "", file == "layer.tar" && !strings.Contains(strings.TrimSuffix(dir, "/"), "/")
	}
	for _, ext := range []string{".json", ".tar"} {
		if hex, found := strings.CutSuffix(name, ext); found {
			d := digest.NewDigestFromEncoded(digest.SHA256, hex)
			if d.Validate() == nil {
				return d, true
			}
		}
	}
	return "", false
}

// BuildManifest returns the Docker schema 2 manifest of item, as
// containerd's importer builds it for archives that have none (Docker
// before 25): its config (media type application/vnd.docker.container.image.v1+json)
// and layers are the blobs that lookup finds in p by their archive path. A
// layer's media type says what its first bytes are: uncompressed
// (application/vnd.docker.image.rootfs.diff.tar, whose digest must then be
// the config's diff ID), gzip or zstd. The returned descriptor carries the
// config's platform.
//
// A path that lookup does not find is errdefs.ErrNotFound naming it;
// a config whose diff IDs do not match the layers is
// errdefs.ErrInvalidArgument.
func BuildManifest(ctx context.Context, p content.Provider, item LoadItem, lookup func(name string) (ocispec.Descriptor, bool)) (ocispec.Descriptor, []byte, error) {
	cfgDesc, ok := lookup(item.Config)
	if !ok {
		return ocispec.Descriptor{}, nil, fmt.Errorf("config %q is not in the archive: %w", item.Config, errdefs.ErrNotFound)
	}
	cfgDesc = ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2Config, Digest: cfgDesc.Digest, Size: cfgDesc.Size}
	cfg, err := images.ReadConfig(ctx, p, cfgDesc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("config %q: %w", item.Config, err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(item.Layers) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("config %q lists %d diff IDs for %d layers: %w", item.Config, len(diffIDs), len(item.Layers), errdefs.ErrInvalidArgument)
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: images.MediaTypeDockerSchema2Manifest,
		Config: cfgDesc, Layers: []ocispec.Descriptor{}}
	for i, name := range item.Layers {
		if err := ctx.Err(); err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		desc, ok := lookup(name)
		if !ok {
			if src, ok := item.LayerSources[diffIDs[i]]; ok && images.IsNonDistributable(src.MediaType) {
				m.Layers = append(m.Layers, src)
				continue
			}
			return ocispec.Descriptor{}, nil, fmt.Errorf("layer %q is not in the archive: %w", name, errdefs.ErrNotFound)
		}
		c, err := detect(ctx, p, desc)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("layer %q: %w", name, err)
		}
		desc = ocispec.Descriptor{Digest: desc.Digest, Size: desc.Size}
		switch c {
		case archive.Gzip:
			desc.MediaType = images.MediaTypeDockerSchema2LayerGzip
		case archive.Zstd:
			desc.MediaType = images.MediaTypeDockerSchema2LayerZstd
		default:
			desc.MediaType = images.MediaTypeDockerSchema2Layer
			if desc.Digest != diffIDs[i] {
				return ocispec.Descriptor{}, nil, fmt.Errorf("layer %q has digest %s but config %q says diff ID %s: %w",
					name, desc.Digest, item.Config, diffIDs[i], errdefs.ErrInvalidArgument)
			}
		}
		m.Layers = append(m.Layers, desc)
	}
	// Docker's field order (schemaVersion, mediaType, config, layers), as
	// ocispec.Manifest marshals it; no empty annotations.
	body, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	if cfg.OS != "" {
		pl := cfg.Platform
		desc.Platform = &pl
	}
	return desc, body, nil
}

// detect reads the first bytes of the blob desc to tell its compression.
func detect(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (archive.Compression, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	head := make([]byte, 4)
	n, err := ra.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	return archive.DetectCompression(head[:n]), nil
}

// ImportFormat is the `docker save` part of an import (ocilayout.Import
// reads both formats in one pass): manifest.json lists the images, each
// given a Docker schema 2 manifest built by BuildManifest from its config
// and layers, found by their paths in the archive.
var ImportFormat = imageimport.Format{
	Name:       "docker save",
	Files:      []string{LoadManifestFile},
	LegacyBlob: LegacyBlobName,
	Targets:    importTargets,
}

// importTargets builds and stores a manifest for each image of
// manifest.json.
func importTargets(ctx context.Context, a *imageimport.Archive) ([]imageimport.Target, error) {
	b, ok := a.File(LoadManifestFile)
	if !ok {
		return nil, nil
	}
	items, err := ParseLoadManifest(b)
	if err != nil {
		return nil, err
	}
	var out []imageimport.Target
	for i, it := range items {
		where := fmt.Sprintf("%s image %d", LoadManifestFile, i)
		if len(it.RepoTags) > 0 {
			where += " (" + strings.Join(it.RepoTags, ", ") + ")"
		}
		desc, body, err := BuildManifest(ctx, a.Content(), it, a.Lookup)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := a.Put(ctx, desc, body); err != nil {
			return nil, fmt.Errorf("%s: store its manifest: %w", where, err)
		}
		names, err := it.Names()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if len(names) == 0 || a.Digests() {
			r, err := reference.Parse(a.BaseName() + "@" + desc.Digest.String())
			if err != nil {
				return nil, fmt.Errorf("%s: image name: %w", where, err)
			}
			names = append(names, r.String())
		}
		out = append(out, imageimport.Target{Desc: desc, Names: names, Where: where})
	}
	return out, nil
}
