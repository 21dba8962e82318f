// Package dockerarchive writes and reads the archives of `docker save` and
// `docker load`, which podman and skopeo's docker-archive: read and write
// too. Export writes the layout of Docker 25 and later:
//
//	manifest.json        [{"Config":"blobs/sha256/<config>","RepoTags":["app:1"],"Layers":["blobs/sha256/<layer>",…]}]
//	repositories         {"app":{"1":"<config hex>"}}
//	oci-layout, index.json  an OCI image layout of the same images (one
//	                     manifest each), as Docker 25 writes it too
//	blobs/sha256/<hex>   the manifests, configs and layers, each once
//
// With the OCI half, an archive strata (or Docker 25+) imports keeps the
// images' manifest digests; older loaders read manifest.json and ignore it.
//
// A Docker archive has no index: it holds one platform of each image.
// Layers are written as the store holds them, gzip or zstd compressed or
// not: docker load, podman and skopeo detect the compression of the files
// manifest.json names, and find a layer's diff ID in its config.
package dockerarchive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/internal/imagetar"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

// The files of a Docker archive besides the blobs.
const (
	annotationImageName    = "io.containerd.image.name"
	exportManifestFile     = "manifest.json"
	exportRepositoriesFile = "repositories"
)

// exportItem is an entry of manifest.json as docker save writes it.
type exportItem struct {
	Config   string
	RepoTags []string
	Layers   []string
	// LayerSources describes the foreign layers by diff ID, for loaders
	// that fetch them from their URLs.
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`

	config digest.Digest
}

// Export writes a `docker save` archive of imgs to w (see the package doc):
// for each image, the manifest platform matches best (nil means the host's
// platform, or a platform it runs, as images.Only matches); an image whose
// target is a manifest is exported whatever its platform unless platform
// is given and does not match. Images with the same manifest share one
// manifest.json entry, with all their tags. RepoTags holds the familiar
// name ("alpine:3.20", "ghcr.io/org/app:1.2"); an image named by digest
// only has none.
//
// Everything is checked before the first byte is written: an image without
// a manifest for the platform is errdefs.ErrNotFound ("no manifest for
// linux/s390x; the image has linux/amd64"), and so are missing blobs, named
// with the image and platform; a blob whose size differs from its
// descriptor is errdefs.ErrDataLoss. The configs are read once; layers are
// streamed from cs into w. An error after writing began leaves w with a
// truncated archive.
func Export(ctx context.Context, w io.Writer, cs content.Provider, imgs []images.Image, platform images.PlatformMatcher) error {
	if len(imgs) == 0 {
		return fmt.Errorf("export: no images given: %w", errdefs.ErrInvalidArgument)
	}
	cache := imagetar.NewCache(cs)
	var (
		items      []*exportItem
		byManifest = map[digest.Digest]*exportItem{}
		repos      = map[string]map[string]string{}
		configs    []digest.Digest
		layers     []ocispec.Descriptor
		added      = map[digest.Digest]bool{}
		missing    []error
		manifests  []digest.Digest
		index      []ocispec.Descriptor
	)
	for _, img := range imgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, err := exportManifest(ctx, cache, img, platform)
		if err != nil {
			return fmt.Errorf("image %q: %w", img.Name, err)
		}
		item := byManifest[desc.Digest]
		if item == nil {
			var (
				m    ocispec.Manifest
				lack []string
			)
			item, m, lack, err = exportPlanImage(ctx, cache, desc)
			if err != nil {
				return fmt.Errorf("image %q (%s): %w", img.Name, exportPlatformName(desc.Platform), err)
			}
			if len(lack) > 0 {
				noun := "blobs are"
				if len(lack) == 1 {
					noun = "blob is"
				}
				missing = append(missing, fmt.Errorf("image %q (%s): %d %s not in the content store (pulled without this platform?): %s: %w",
					img.Name, exportPlatformName(desc.Platform), len(lack), noun, strings.Join(lack, ", "), errdefs.ErrNotFound))
				continue
			}
			byManifest[desc.Digest] = item
			items = append(items, item)
			if _, err := content.ReadBlob(ctx, cache, desc, images.MaxManifestSize); err != nil {
				return fmt.Errorf("image %q: %w", img.Name, err)
			}
			manifests = append(manifests, desc.Digest)
			if !added[m.Config.Digest] {
				added[m.Config.Digest] = true
				configs = append(configs, m.Config.Digest)
			}
			for _, l := range m.Layers {
				if !added[l.Digest] {
					added[l.Digest] = true
					layers = append(layers, l)
				}
			}
		}
		entry := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform,
			Annotations: map[string]string{annotationImageName: img.Name}}
		if r, ok := exportTag(img.Name); ok {
			entry.Annotations[ocispec.AnnotationRefName] = r.Tag
		}
		index = append(index, entry)
		if r, ok := exportTag(img.Name); ok {
			familiar := r.Familiar()
			if !slices.Contains(item.RepoTags, familiar) {
				item.RepoTags = append(item.RepoTags, familiar)
			}
			repo := strings.TrimSuffix(familiar, ":"+r.Tag)
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			// Loaders read manifest.json; the image ID stands where the
			// legacy format had its top layer's ID.
			repos[repo][r.Tag] = item.config.Encoded()
		}
	}
	if len(missing) > 0 {
		return errors.Join(missing...)
	}

	manifestJSON, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("encode %s: %w", exportManifestFile, err)
	}
	reposJSON, err := json.Marshal(repos)
	if err != nil {
		return fmt.Errorf("encode %s: %w", exportRepositoriesFile, err)
	}
	indexJSON, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: index})
	if err != nil {
		return fmt.Errorf("encode index.json: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	aw := imagetar.NewWriter(w)
	for _, f := range []struct {
		name string
		b    []byte
	}{{exportManifestFile, manifestJSON}, {exportRepositoriesFile, reposJSON}, {ocispec.ImageLayoutFile, layoutJSON}, {"index.json", indexJSON}} {
		if err := aw.File(ctx, f.name, f.b); err != nil {
			return err
		}
	}
	for _, d := range manifests {
		if err := aw.File(ctx, exportBlobPath(d), cache.Bytes(d)); err != nil {
			return err
		}
	}
	for _, d := range configs {
		if err := aw.File(ctx, exportBlobPath(d), cache.Bytes(d)); err != nil {
			return err
		}
	}
	for _, l := range layers {
		if err := aw.Blob(ctx, cs, l); err != nil {
			return err
		}
	}
	return aw.Close()
}

// exportManifest picks the manifest of img to export, with its Platform
// set when it can be told.
func exportManifest(ctx context.Context, p content.Provider, img images.Image, platform images.PlatformMatcher) (ocispec.Descriptor, error) {
	target := img.Target
	if images.IsManifest(target.MediaType) && platform == nil {
		desc := target
		if m, err := images.ReadManifest(ctx, p, target); err == nil {
			if cfg, err := images.ReadConfig(ctx, p, m.Config); err == nil {
				desc.Platform = &cfg.Platform
			}
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return ocispec.Descriptor{}, err
		}
		return desc, nil
	}
	if platform == nil {
		platform = images.Only(images.DefaultPlatform())
	}
	descs, err := images.Manifests(ctx, p, target, platform)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if len(descs) == 0 {
		// Manifest says what the image has instead.
		_, _, err := images.Manifest(ctx, p, target, platform)
		if err == nil {
			err = fmt.Errorf("no manifest for %s: %w", platform, errdefs.ErrNotFound)
		}
		return ocispec.Descriptor{}, err
	}
	return descs[0], nil
}

// exportPlanImage reads the manifest desc and its config and checks that
// its layers are in the store. It returns the manifest.json entry, without
// tags, and the manifest, or what is missing ("layer sha256:…").
func exportPlanImage(ctx context.Context, cache *imagetar.Cache, desc ocispec.Descriptor) (*exportItem, ocispec.Manifest, []string, error) {
	m, err := images.ReadManifest(ctx, cache, desc)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, m, []string{"manifest " + desc.Digest.String()}, nil
	}
	if err != nil {
		return nil, m, nil, err
	}
	var lack []string
	diffIDs, err := images.RootFS(ctx, cache, m)
	if errors.Is(err, errdefs.ErrNotFound) {
		lack = append(lack, "config "+m.Config.Digest.String())
	} else if err != nil {
		return nil, m, nil, err
	}
	item := &exportItem{Config: exportBlobPath(m.Config.Digest), config: m.Config.Digest}
	for i, l := range m.Layers {
		ok, err := cache.Has(ctx, l)
		if err != nil {
			return nil, m, nil, err
		}
		if !ok {
			lack = append(lack, "layer "+l.Digest.String())
			continue
		}
		item.Layers = append(item.Layers, exportBlobPath(l.Digest))
		if images.IsNonDistributable(l.MediaType) && diffIDs != nil {
			if item.LayerSources == nil {
				item.LayerSources = map[digest.Digest]ocispec.Descriptor{}
			}
			item.LayerSources[diffIDs[i]] = l
		}
	}
	return item, m, lack, nil
}

// exportTag returns the name:tag of an image name, without a digest; an
// image named by digest only, or by no reference at all, has none.
func exportTag(name string) (reference.Reference, bool) {
	r, err := reference.Parse(name)
	if err != nil || r.Tag == "" {
		return reference.Reference{}, false
	}
	return reference.Reference{Domain: r.Domain, Path: r.Path, Tag: r.Tag}, true
}

func exportPlatformName(p *ocispec.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	return images.FormatPlatform(*p)
}

// exportBlobPath is where the blob d lives in the archive.
func exportBlobPath(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}
