package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/archive/internal/imagetar"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/wiring"
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

// Defaults of Limits.
const (
	DefaultMaxJSON    = 4 << 20
	DefaultMaxEntries = 100_000
	DefaultMaxBlob    = 64 << 30
)

// Limits bound what Import accepts from an archive, which may be hostile.
// Zero fields take the defaults.
type Limits struct {
	// MaxJSON bounds each JSON file read into memory: oci-layout,
	// index.json, manifest.json (default 4 MiB).
	MaxJSON int64
	// MaxEntries bounds the entries of the tar (default 100,000).
	MaxEntries int
	// MaxBlob bounds each blob (default 64 GiB).
	MaxBlob int64
}

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxJSON < 0 || l.MaxEntries < 0 || l.MaxBlob < 0 {
		return l, fmt.Errorf("import limits %+v: must not be negative: %w", l, errdefs.ErrInvalidArgument)
	}
	if l.MaxJSON == 0 {
		l.MaxJSON = DefaultMaxJSON
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxBlob == 0 {
		l.MaxBlob = DefaultMaxBlob
	}
	return l, nil
}

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

// Names of the files of a layout and annotations that name its images.
const (
	importLayoutFile     = "oci-layout"
	importIndexFile      = "index.json"
	importAnnotationName = "io.containerd.image.name"
	importAttestation    = "vnd.docker.reference.type"
	importMaxLinks       = 8
	importMaxDepth       = 8
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
func Import(ctx context.Context, r io.Reader, st *wiring.Store, o ImportOptions) ([]images.Image, error) {
	lim, err := o.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	base := o.BaseName
	if base == "" {
		base = "import-" + time.Now().Format("2006-01-02")
	}
	if _, err := reference.Parse(base + "@" + digest.FromString("").String()); err != nil {
		return nil, fmt.Errorf("base name %q: %w", o.BaseName, err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	lm := st.DB.Leases()
	l, err := lm.Create(ctx, leases.WithExpiration(24*time.Hour), leases.WithLabels(map[string]string{lbl.LeaseImport: base}))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lm.Delete(context.WithoutCancel(ctx), l); err != nil {
			o.Logger.Warn("drop the import's lease", "lease", l.ID, "error", err)
		}
	}()
	ctx = leases.WithLease(ctx, l.ID)
	im := &importer{cs: st.DB.ContentStore(), lm: lm, lease: l, lim: lim, base: base, o: o,
		files: map[string][]byte{}, blobs: map[string]ocispec.Descriptor{}, links: map[string]string{},
		seen: map[string]bool{}, have: map[digest.Digest]bool{}}
	if err := im.read(ctx, r); err != nil {
		return nil, err
	}
	targets, err := im.targets(ctx)
	if err != nil {
		return nil, err
	}
	// Every image is checked before any is recorded: an archive imports
	// whole or not at all.
	for _, t := range targets {
		if err := im.check(ctx, t); err != nil {
			return nil, err
		}
	}
	done := map[digest.Digest]bool{}
	for _, t := range targets {
		if err := im.label(ctx, t.desc, done, 0); err != nil {
			return nil, err
		}
	}
	return im.record(ctx, st.DB.Images(), targets)
}

// importer is the state of one Import.
type importer struct {
	cs    content.Store
	lm    holdingLeases
	lease leases.Lease
	lim   Limits
	base  string
	o     ImportOptions

	// files are the JSON files by name; blobs the digest and size of each
	// blob entry by path; links the targets of legacy layer.tar links.
	files map[string][]byte
	blobs map[string]ocispec.Descriptor
	links map[string]string
	seen  map[string]bool
	// have holds the blobs known present and held by the import's lease.
	have    map[digest.Digest]bool
	entries int
	buf     []byte // for copying blobs
}

// importTarget is an image to record: its root descriptor, the names the
// archive gives it, and where it was found, for errors.
type importTarget struct {
	desc  ocispec.Descriptor
	names []string
	where string
}

// read makes the pass over the tar.
func (im *importer) read(ctx context.Context, r io.Reader) error {
	// docker load and ctr import take compressed archives too.
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	defer dr.Close()
	tr := tar.NewReader(dr)
	last := "at its start"
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !(hdr != nil && errors.Is(err, tar.ErrInsecurePath)) {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("archive is truncated %s: %w", last, err)
			}
			return fmt.Errorf("read archive %s: %v (not a tar archive, or damaged): %w", last, err, errdefs.ErrInvalidArgument)
		}
		im.entries++
		if im.entries > im.lim.MaxEntries {
			return fmt.Errorf("archive has more than %d entries: %w", im.lim.MaxEntries, errdefs.ErrInvalidArgument)
		}
		last = fmt.Sprintf("after entry %q", hdr.Name)
		if err := im.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
	if im.entries == 0 {
		return fmt.Errorf("archive is empty: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// cleanName checks that the tar entry name stays inside the archive and
// returns it cleaned ("./index.json" is index.json).
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("entry with an empty name: %w", errdefs.ErrInvalidArgument)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("entry %q: absolute path: %w", name, errdefs.ErrInvalidArgument)
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "", fmt.Errorf("entry %q: path has \"..\": %w", name, errdefs.ErrInvalidArgument)
	}
	return path.Clean(name), nil
}

// Kinds of entries.
const (
	entryOther  = iota // skipped
	entryJSON          // kept in memory
	entryBlob          // streamed into the store
	entryLegacy        // a legacy <id>/layer.tar: a blob, or a link to one
)

// classify says what the entry name (cleaned) holds and the digest its
// name promises.
func classify(name string) (kind int, want digest.Digest, err error) {
	switch name {
	case importLayoutFile, importIndexFile, dockerarchive.LoadManifestFile:
		return entryJSON, "", nil
	}
	if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
		alg, enc, ok := strings.Cut(rest, "/")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if !ok || strings.Contains(enc, "/") || d.Validate() != nil {
			return 0, "", fmt.Errorf("entry %q: not a blob name (blobs/<algorithm>/<encoded digest>): %w", name, errdefs.ErrInvalidArgument)
		}
		if d.Algorithm() != digest.SHA256 {
			return 0, "", fmt.Errorf("entry %q: digest algorithm %s: only sha256 is supported: %w", name, d.Algorithm(), errdefs.ErrNotImplemented)
		}
		return entryBlob, d, nil
	}
	if want, ok := dockerarchive.LegacyBlobName(name); ok {
		if want == "" {
			return entryLegacy, "", nil
		}
		return entryBlob, want, nil
	}
	return entryOther, "", nil
}

// entry handles one tar entry.
func (im *importer) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	kind, want, err := classify(name)
	if err != nil || kind == entryOther {
		return err
	}
	if im.seen[name] {
		return fmt.Errorf("entry %q appears twice in the archive: %w", hdr.Name, errdefs.ErrInvalidArgument)
	}
	im.seen[name] = true
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00': // '\x00' is the pre-POSIX regular file
	case tar.TypeSymlink, tar.TypeLink:
		if kind != entryLegacy {
			return fmt.Errorf("entry %q is a link (to %q), not a regular file: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalidArgument)
		}
		// Docker and containers/image link a layer.tar to the copy
		// saved first: only a name to look up, never followed on disk.
		target := hdr.Linkname
		if hdr.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(name), target)
		}
		t, err := cleanName(target)
		if err != nil || t == "." {
			return fmt.Errorf("entry %q: link to %q leaves the archive: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalidArgument)
		}
		im.links[name] = t
		return nil
	default:
		return fmt.Errorf("entry %q: tar type %q, not a regular file: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
	if kind == entryJSON {
		if hdr.Size > im.lim.MaxJSON {
			return fmt.Errorf("entry %q: %d bytes exceeds the limit of %d for JSON files: %w", hdr.Name, hdr.Size, im.lim.MaxJSON, errdefs.ErrInvalidArgument)
		}
		b, err := io.ReadAll(io.LimitReader(tr, im.lim.MaxJSON))
		if err != nil {
			return truncated(hdr, int64(len(b)), err)
		}
		im.files[name] = b
		return nil
	}
	if hdr.Size > im.lim.MaxBlob {
		return fmt.Errorf("entry %q: %d bytes exceeds the limit of %d for blobs: %w", hdr.Name, hdr.Size, im.lim.MaxBlob, errdefs.ErrInvalidArgument)
	}
	desc, err := im.write(ctx, tr, hdr, want)
	if err != nil {
		return err
	}
	im.blobs[name] = desc
	return nil
}

// truncated describes a failure reading an entry's data.
func truncated(hdr *tar.Header, n int64, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("archive is truncated in entry %q (%d of %d bytes): %w", hdr.Name, n, hdr.Size, err)
	}
	return fmt.Errorf("read entry %q: %w", hdr.Name, err)
}

// write streams the entry's data into the store and returns its
// descriptor (digest and size). With want, the data must have that digest;
// without, the digest is computed.
func (im *importer) write(ctx context.Context, tr *tar.Reader, hdr *tar.Header, want digest.Digest) (ocispec.Descriptor, error) {
	ref := fmt.Sprintf("import-%s-%d", im.lease.ID, im.entries)
	var expected ocispec.Descriptor
	if want != "" {
		expected = ocispec.Descriptor{Digest: want, Size: hdr.Size}
	}
	w, err := im.cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(expected))
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// In the store already and now held by the lease (never without
		// want): the tar reader skips the data.
		im.have[want] = true
		return expected, nil
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if want != "" {
		if done, err := content.CommitIfComplete(ctx, w, expected); err != nil {
			w.Close()
			return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
		} else if done {
			w.Close()
			im.have[want] = true
			return expected, nil
		}
	}
	abort := func() {
		w.Close()
		if err := im.cs.Abort(context.WithoutCancel(ctx), ref); err != nil && !errdefs.IsNotFound(err) {
			im.log().Warn("abort the ingest of an import", "ref", ref, "error", err)
		}
	}
	if im.buf == nil {
		im.buf = make([]byte, 1<<20)
	}
	n, err := io.CopyBuffer(w, imagetar.CtxReader{Ctx: ctx, R: tr}, im.buf)
	if err != nil {
		abort()
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, ctx.Err()
		}
		return ocispec.Descriptor{}, truncated(hdr, n, err)
	}
	got := w.Digest()
	if want != "" && got != want {
		abort()
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: content has digest %s, its name says %s: %w", hdr.Name, got, want, errdefs.ErrDataLoss)
	}
	if err := w.Commit(ctx, n, got); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		abort()
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	w.Close()
	im.have[got] = true
	return ocispec.Descriptor{Digest: got, Size: n}, nil
}

func (im *importer) log() *slog.Logger { return im.o.Logger }

// lookup finds the blob at path p of the archive, following legacy links.
func (im *importer) lookup(p string) (ocispec.Descriptor, bool) {
	name, err := cleanName(p)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	for range importMaxLinks {
		if desc, ok := im.blobs[name]; ok {
			return desc, true
		}
		t, ok := im.links[name]
		if !ok {
			break
		}
		name = t
	}
	return ocispec.Descriptor{}, false
}

// targets reads the archive's list of images: index.json, or else
// manifest.json, whose images get manifests built and stored.
func (im *importer) targets(ctx context.Context) ([]importTarget, error) {
	if b, ok := im.files[importLayoutFile]; ok {
		var layout ocispec.ImageLayout
		if err := json.Unmarshal(b, &layout); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", importLayoutFile, err, errdefs.ErrInvalidArgument)
		}
		if layout.Version != ocispec.ImageLayoutVersion {
			return nil, fmt.Errorf("%s: image layout version %q, want %q: %w", importLayoutFile, layout.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
		}
	}
	if b, ok := im.files[importIndexFile]; ok {
		return im.indexTargets(b)
	}
	if b, ok := im.files[dockerarchive.LoadManifestFile]; ok {
		return im.dockerTargets(ctx, b)
	}
	return nil, fmt.Errorf("not an image archive: it has neither %s (OCI image layout) nor %s (docker save): %w",
		importIndexFile, dockerarchive.LoadManifestFile, errdefs.ErrInvalidArgument)
}

func (im *importer) indexTargets(b []byte) ([]importTarget, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", importIndexFile, err, errdefs.ErrInvalidArgument)
	}
	var out []importTarget
	for i, m := range idx.Manifests {
		where := fmt.Sprintf("%s manifest %d", importIndexFile, i)
		if err := m.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: digest %q: %v: %w", where, m.Digest, err, errdefs.ErrInvalidArgument)
		}
		if !images.IsIndex(m.MediaType) && !images.IsManifest(m.MediaType) {
			// An artifact or a schema 1 manifest: not an image to record.
			im.log().Debug("skip a descriptor of index.json that is no image", "digest", m.Digest, "media_type", m.MediaType)
			continue
		}
		names, err := im.names(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, importTarget{desc: unnamed(m), names: names, where: where})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no images: %w", importIndexFile, errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// names returns the names of the image m of index.json, as containerd's
// importer gives them: io.containerd.image.name as is, a full reference in
// org.opencontainers.image.ref.name as is, a tag there after the base
// name; BaseName@<digest> for an image with no name, and for all with
// Digests.
func (im *importer) names(m ocispec.Descriptor) ([]string, error) {
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
		err = add(im.base + "@" + ref)
	case strings.ContainsAny(ref, "/:@"):
		err = add(ref)
	default:
		err = add(im.base + ":" + ref)
	}
	if err != nil {
		return nil, err
	}
	if len(names) == 0 || im.o.Digests {
		if err := add(im.base + "@" + m.Digest.String()); err != nil {
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

// dockerTargets builds and stores a manifest for each image of a legacy
// docker archive's manifest.json.
func (im *importer) dockerTargets(ctx context.Context, b []byte) ([]importTarget, error) {
	items, err := dockerarchive.ParseLoadManifest(b)
	if err != nil {
		return nil, err
	}
	var out []importTarget
	for i, it := range items {
		where := fmt.Sprintf("%s image %d", dockerarchive.LoadManifestFile, i)
		if len(it.RepoTags) > 0 {
			where += " (" + strings.Join(it.RepoTags, ", ") + ")"
		}
		desc, body, err := dockerarchive.BuildManifest(ctx, im.cs, it, im.lookup)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := content.WriteBlob(ctx, im.cs, "import-"+im.lease.ID+"-"+desc.Digest.String(), bytes.NewReader(body), desc); err != nil {
			return nil, fmt.Errorf("%s: store its manifest: %w", where, err)
		}
		im.have[desc.Digest] = true
		names, err := it.Names()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if len(names) == 0 || im.o.Digests {
			r, err := reference.Parse(im.base + "@" + desc.Digest.String())
			if err != nil {
				return nil, fmt.Errorf("%s: image name: %w", where, err)
			}
			names = append(names, r.String())
		}
		out = append(out, importTarget{desc: desc, names: names, where: where})
	}
	return out, nil
}

// present reports whether blob d is in the store, from the archive or
// from before; one from before is added to the import's lease, so that
// nothing collects it before the image records exist.
func (im *importer) present(ctx context.Context, d digest.Digest) (bool, error) {
	if im.have[d] {
		return true, nil
	}
	// Seeing the blob and holding it are one step: a collection between
	// the two would remove it under an import that counts on it.
	if err := im.lm.HoldExisting(ctx, im.lease, leases.Resource{ID: d.String(), Type: "content"}); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	im.have[d] = true
	return true, nil
}

// holdingLeases is the lease manager an import needs: one that can hold a
// blob only if it is there, in one step (metadata.LeaseManager).
type holdingLeases interface {
	leases.Manager
	HoldExisting(ctx context.Context, lease leases.Lease, r leases.Resource) error
}

// imageName is how errors name the image of t.
func (t importTarget) imageName() string {
	if len(t.names) > 0 {
		return t.names[0]
	}
	return t.where
}

// check makes sure the store now has what the image t needs: all of a
// manifest target; for an index, the manifest that the host platform
// runs best (with AllPlatforms, every manifest), its config and layers.
// Manifests of other platforms may be missing: an index exported for one
// platform is still an image.
func (im *importer) check(ctx context.Context, t importTarget) error {
	name := t.imageName()
	if images.IsManifest(t.desc.MediaType) {
		return im.checkManifest(ctx, name, t.desc, "")
	}
	leaves, err := im.leaves(ctx, name, t.desc, 0)
	if err != nil {
		return err
	}
	const hint = " (exported without --all-platforms?)"
	if im.o.AllPlatforms {
		for _, l := range leaves {
			if err := im.checkManifest(ctx, name, l, hint); err != nil {
				return err
			}
		}
		return nil
	}
	host := images.Only(images.DefaultPlatform())
	var (
		best    *ocispec.Descriptor
		unknown []string
	)
	for i, l := range leaves {
		switch {
		case l.Platform == nil:
			unknown = append(unknown, l.Digest.String())
		case host.Match(*l.Platform) && (best == nil || host.Less(*l.Platform, *best.Platform)):
			best = &leaves[i]
		}
	}
	if best != nil {
		return im.checkManifest(ctx, name, *best, hint)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("image %q: no manifest for %s in the archive, and manifests %s of unknown platform are not in it%s: %w",
			name, host, strings.Join(unknown, ", "), hint, errdefs.ErrNotFound)
	}
	// The image does not offer the host's platform: recorded all the same.
	return nil
}

// leaves returns the image manifests under the index desc, attestations
// left out, with their platforms from the index or, when it has none and
// the blobs are there, from their configs.
func (im *importer) leaves(ctx context.Context, name string, desc ocispec.Descriptor, depth int) ([]ocispec.Descriptor, error) {
	if depth > importMaxDepth {
		return nil, fmt.Errorf("image %q: indexes nested deeper than %d: %w", name, importMaxDepth, errdefs.ErrInvalidArgument)
	}
	if ok, err := im.present(ctx, desc.Digest); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("image %q: index %s is not in the archive: %w", name, desc.Digest, errdefs.ErrNotFound)
	}
	idx, err := images.ReadIndex(ctx, im.cs, desc)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	var out []ocispec.Descriptor
	for _, c := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case images.IsIndex(c.MediaType):
			ok, err := im.present(ctx, c.Digest)
			if err != nil {
				return nil, err
			}
			if !ok && !im.o.AllPlatforms {
				continue // its platforms are unknown, and not asked for
			}
			sub, err := im.leaves(ctx, name, c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case images.IsManifest(c.MediaType):
			if c.Annotations[importAttestation] == "attestation-manifest" {
				continue
			}
			if c.Platform == nil {
				p, err := im.platformOf(ctx, c)
				if err != nil {
					return nil, fmt.Errorf("image %q: %w", name, err)
				}
				c.Platform = p
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// platformOf reads the platform of manifest desc from its config, or
// returns nil when either blob is missing.
func (im *importer) platformOf(ctx context.Context, desc ocispec.Descriptor) (*ocispec.Platform, error) {
	if ok, err := im.present(ctx, desc.Digest); !ok || err != nil {
		return nil, err
	}
	m, err := images.ReadManifest(ctx, im.cs, desc)
	if err != nil {
		return nil, err
	}
	if ok, err := im.present(ctx, m.Config.Digest); !ok || err != nil {
		return nil, err
	}
	cfg, err := images.ReadConfig(ctx, im.cs, m.Config)
	if err != nil {
		return nil, err
	}
	return &cfg.Platform, nil
}

// checkManifest makes sure the manifest desc, its config and its layers
// are present (non-distributable layers may be missing, as in a pull).
func (im *importer) checkManifest(ctx context.Context, name string, desc ocispec.Descriptor, hint string) error {
	what := ""
	if desc.Platform != nil {
		what = images.FormatPlatform(*desc.Platform) + " "
	}
	if ok, err := im.present(ctx, desc.Digest); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("image %q: %smanifest %s is not in the archive%s: %w", name, what, desc.Digest, hint, errdefs.ErrNotFound)
	}
	m, err := images.ReadManifest(ctx, im.cs, desc)
	if err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	if ok, err := im.present(ctx, m.Config.Digest); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("image %q: %sconfig %s of manifest %s is not in the archive: %w", name, what, m.Config.Digest, desc.Digest, errdefs.ErrNotFound)
	}
	if _, err := images.RootFS(ctx, im.cs, m); err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	for _, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := im.present(ctx, l.Digest)
		if err != nil {
			return err
		}
		if !ok && !images.IsNonDistributable(l.MediaType) {
			return fmt.Errorf("image %q: %slayer %s of manifest %s is not in the archive: %w", name, what, l.Digest, desc.Digest, errdefs.ErrNotFound)
		}
	}
	return nil
}

// label sets the labels a pull sets on what is present under desc:
// gc.ref.content edges on indexes and manifests, the uncompressed digest
// on layers.
func (im *importer) label(ctx context.Context, desc ocispec.Descriptor, done map[digest.Digest]bool, depth int) error {
	if done[desc.Digest] || depth > importMaxDepth {
		return nil
	}
	done[desc.Digest] = true
	if ok, err := im.present(ctx, desc.Digest); !ok || err != nil {
		return err
	}
	labels := map[string]string{}
	switch {
	case images.IsIndex(desc.MediaType):
		idx, err := images.ReadIndex(ctx, im.cs, desc)
		if err != nil {
			return err
		}
		for i, c := range idx.Manifests {
			labels[fmt.Sprintf("%s%d", lbl.GCRefManifestPrefix, i)] = c.Digest.String()
			if images.IsIndex(c.MediaType) || images.IsManifest(c.MediaType) {
				if err := im.label(ctx, c, done, depth+1); err != nil {
					return err
				}
			}
		}
	case images.IsManifest(desc.MediaType):
		m, err := images.ReadManifest(ctx, im.cs, desc)
		if err != nil {
			return err
		}
		labels[lbl.GCRefConfig] = m.Config.Digest.String()
		for i, l := range m.Layers {
			labels[fmt.Sprintf("%s%d", lbl.GCRefLayerPrefix, i)] = l.Digest.String()
		}
		// A config that does not list the layers' diff IDs (the
		// manifest of a platform not asked for, an attestation) labels
		// no layer; the manifests asked for were checked.
		var diffIDs []digest.Digest
		if ok, err := im.present(ctx, m.Config.Digest); err != nil {
			return err
		} else if ok {
			diffIDs, _ = images.RootFS(ctx, im.cs, m)
		}
		if len(diffIDs) == len(m.Layers) {
			for i, l := range m.Layers {
				if ok, err := im.present(ctx, l.Digest); err != nil {
					return err
				} else if ok && !done[l.Digest] {
					done[l.Digest] = true
					if err := im.setLabels(ctx, l.Digest, map[string]string{lbl.Uncompressed: diffIDs[i].String()}); err != nil {
						return err
					}
				}
			}
		}
	default:
		return nil
	}
	return im.setLabels(ctx, desc.Digest, labels)
}

func (im *importer) setLabels(ctx context.Context, d digest.Digest, labels map[string]string) error {
	var paths []string
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	if _, err := im.cs.Update(ctx, content.Info{Digest: d, Labels: labels}, paths...); err != nil {
		return fmt.Errorf("label %s: %w", d, err)
	}
	return nil
}

// record creates (or points at the new target) the image records, one per
// name; a name given twice goes to the later image, as with containerd.
// The records are all written or, on failure, none: those created are
// removed and those retargeted point at their old target again.
func (im *importer) record(ctx context.Context, is images.Store, targets []importTarget) ([]images.Image, error) {
	var order []string
	byName := map[string]ocispec.Descriptor{}
	for _, t := range targets {
		for _, n := range t.names {
			if _, ok := byName[n]; !ok {
				order = append(order, n)
			}
			byName[n] = t.desc
		}
	}
	var out, created, retargeted []images.Image
	undo := func() {
		ctx := context.WithoutCancel(ctx)
		for _, c := range created {
			if err := is.Delete(ctx, c.Name); err != nil {
				im.log().Warn("remove an image of a failed import", "name", c.Name, "error", err)
			}
		}
		for _, old := range retargeted {
			if _, err := is.Update(ctx, old, "target"); err != nil {
				im.log().Warn("restore the target of an image after a failed import", "name", old.Name, "digest", old.Target.Digest, "error", err)
			}
		}
	}
	for _, n := range order {
		img := images.Image{Name: n, Target: byName[n]}
		got, err := is.Create(ctx, img)
		if err == nil {
			created = append(created, got)
		} else if errors.Is(err, errdefs.ErrAlreadyExists) {
			var old images.Image
			if old, err = is.Get(ctx, n); err == nil {
				if got, err = is.Update(ctx, img, "target"); err == nil {
					retargeted = append(retargeted, old)
				}
			}
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("record image %q: %w", n, err)
		}
		out = append(out, got)
	}
	return out, nil
}
