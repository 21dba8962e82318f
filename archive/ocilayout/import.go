package ocilayout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/archive/internal/imageimport"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

// Import reads image archives in one pass over the tar, whatever the order
// of its entries:
//
//	oci-layout                {"imageLayoutVersion": "1.0.0"}            kept in memory
//	index.json                the images, named by annotations           kept in memory
//	blobs/sha256/<hex>        every blob, verified against its name      streamed to the store
//	manifest.json             `docker save`: configs, layers, RepoTags   kept in memory
//	<hex>.json, <hex>.tar     legacy docker config, layer (verified)     streamed to the store
//	<id>/layer.tar            legacy docker layer (digest computed),     streamed to the store
//	                          or a link to another layer file
//
// With index.json the archive is an OCI image layout (Docker 25 and later
// write one beside manifest.json); with only manifest.json it is a legacy
// `docker save` archive, whose images get a Docker schema 2 manifest built
// by dockerarchive.BuildManifest. Any other entry is skipped, but every
// path is checked first.
//
// Each format has one room: the pass over the tar, the checks, the GC
// labels and the records are archive/internal/imageimport's; this package
// reads index.json (format), archive/dockerarchive manifest.json
// (dockerarchive.ImportFormat); Import runs the pass with both.

// Defaults of Limits.
const (
	DefaultMaxJSON    = imageimport.DefaultMaxJSON
	DefaultMaxEntries = imageimport.DefaultMaxEntries
	DefaultMaxBlob    = imageimport.DefaultMaxBlob
)

// Limits bound what Import accepts from an archive, which may be hostile.
// Zero fields take the defaults: MaxJSON bounds each JSON file read into
// memory (oci-layout, index.json, manifest.json; default 4 MiB),
// MaxEntries the entries of the tar (default 100,000), MaxBlob each blob
// (default 64 GiB).
type Limits = imageimport.Limits

// ImportOptions configure an Import.
type ImportOptions struct {
	// BaseName names what the archive leaves unnamed, as ctr --base-name
	// does: an image whose ref name is a tag only ("1.2") becomes
	// BaseName:1.2, one with no name at all BaseName@<digest>. Empty means
	// "import-<yyyy-mm-dd>", ctr's default.
	BaseName string
	// Digests also names every image BaseName@<digest>, as ctr --digests.
	Digests bool
	// AllPlatforms requires every platform of an index to be complete in
	// the archive (or the store); otherwise only the host's must be.
	AllPlatforms bool
	Limits       Limits
	// Logger gets what cleanup could not do; nil discards it.
	Logger *slog.Logger
}

// Names of the files of a layout and the annotation that names its
// images.
const (
	importLayoutFile     = "oci-layout"
	importIndexFile      = "index.json"
	importAnnotationName = "io.containerd.image.name"
)

// Import reads an image archive from r in one pass: an OCI image layout tar,
// or a `docker save` tar in the legacy layout or Docker 25's OCI layout with
// manifest.json. Every blob is written into st's content store as it
// streams by, verified against the digest its path names (legacy layer.tar
// files get theirs computed). After the end of the tar the image records
// are created, named from the annotations org.opencontainers.image.ref.name
// and io.containerd.image.name, or the RepoTags of manifest.json, as
// ImportOptions say; Import returns them.
//
// Everything is written under a lease that Import deletes at the end, so a
// failed import leaves nothing that garbage collection keeps. Errors name
// the entry and the reason: a path that is absolute or has "..", a link or
// device where a file belongs, a duplicate entry, a JSON file, blob or
// entry count over Limits (errdefs.ErrInvalidArgument); a blob whose
// content does not match its name, with both digests
// (errdefs.ErrDataLoss); a truncated tar; an image whose host platform
// (with AllPlatforms, any platform) lacks blobs (errdefs.ErrNotFound:
// "image X: linux/arm64 manifest sha256:… is not in the archive").
func Import(ctx context.Context, r io.Reader, st Store, o ImportOptions) ([]images.Image, error) {
	return imageimport.Import(ctx, r, st, imageimport.Options{BaseName: o.BaseName, Digests: o.Digests,
		AllPlatforms: o.AllPlatforms, Limits: o.Limits, Logger: o.Logger}, format, dockerarchive.ImportFormat)
}

// Store is what an import writes to: *wiring.Store in this process, or
// client.Store over the daemon's socket.
type Store = imageimport.Store

// format is the OCI image layout's part of an import: index.json names
// the images (Docker 25 writes one beside manifest.json, and it wins).
var format = imageimport.Format{
	Name:    "OCI image layout",
	Files:   []string{importIndexFile, importLayoutFile},
	Targets: targets,
}

// targets reads index.json, after checking the layout version when the
// archive says it.
func targets(ctx context.Context, a *imageimport.Archive) ([]imageimport.Target, error) {
	if b, ok := a.File(importLayoutFile); ok {
		var layout ocispec.ImageLayout
		if err := json.Unmarshal(b, &layout); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", importLayoutFile, err, errdefs.ErrInvalidArgument)
		}
		if layout.Version != ocispec.ImageLayoutVersion {
			return nil, fmt.Errorf("%s: image layout version %q, want %q: %w", importLayoutFile, layout.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
		}
	}
	b, ok := a.File(importIndexFile)
	if !ok {
		return nil, nil
	}
	return indexTargets(a, b)
}

func indexTargets(a *imageimport.Archive, b []byte) ([]imageimport.Target, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", importIndexFile, err, errdefs.ErrInvalidArgument)
	}
	var out []imageimport.Target
	for i, m := range idx.Manifests {
		where := fmt.Sprintf("%s manifest %d", importIndexFile, i)
		if err := m.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: digest %q: %w: %w", where, m.Digest, err, errdefs.ErrInvalidArgument)
		}
		if !images.IsIndex(m.MediaType) && !images.IsManifest(m.MediaType) {
			// An artifact or a schema 1 manifest: not an image to record.
			a.Logger().Debug("skip a descriptor of index.json that is no image", "digest", m.Digest, "media_type", m.MediaType)
			continue
		}
		names, err := imageNames(a, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, imageimport.Target{Desc: unnamed(m), Names: names, Where: where})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no images: %w", importIndexFile, errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// imageNames returns the names of the image m of index.json, as containerd's
// importer gives them: io.containerd.image.name as is, a full reference in
// org.opencontainers.image.ref.name as is, a tag there after the base
// name; BaseName@<digest> for an image with no name, and for all with
// Digests.
func imageNames(a *imageimport.Archive, m ocispec.Descriptor) ([]string, error) {
	var names []string
	add := func(s string) error {
		r, err := reference.Parse(s)
		if err != nil {
			return fmt.Errorf("image name: %w", err)
		}
		if !slices.Contains(names, r.String()) {
			names = append(names, r.String())
		}
		return nil
	}
	full, ref := m.Annotations[importAnnotationName], m.Annotations[ocispec.AnnotationRefName]
	var err error
	switch {
	case full != "":
		err = add(full)
	case ref == "":
	case digest.Digest(ref).Validate() == nil:
		err = add(a.BaseName() + "@" + ref)
	case strings.ContainsAny(ref, "/:@"):
		err = add(ref)
	default:
		err = add(a.BaseName() + ":" + ref)
	}
	if err != nil {
		return nil, err
	}
	if len(names) == 0 || a.Digests() {
		if err := add(a.BaseName() + "@" + m.Digest.String()); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// unnamed returns desc without the annotations that named it in
// index.json: the image record names it now, and a later tag or export
// must not find a stale name on its target.
func unnamed(desc ocispec.Descriptor) ocispec.Descriptor {
	if len(desc.Annotations) == 0 {
		return desc
	}
	a := maps.Clone(desc.Annotations)
	delete(a, importAnnotationName)
	delete(a, ocispec.AnnotationRefName)
	if len(a) == 0 {
		a = nil
	}
	desc.Annotations = a
	return desc
}
