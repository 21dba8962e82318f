// Package imageimport is the one pass over an image archive that both
// formats share (archive/ocilayout's OCI image layout, archive/
// dockerarchive's `docker save`): every blob streamed into the content
// store as it goes by, verified against the digest its path names, the
// formats' JSON files kept in memory; then, once the tar ends, each
// format in turn is asked for the images (Format.Targets), which are
// checked, labelled for garbage collection as a pull labels them, and
// recorded all or none, under a lease that Import drops at the end.
//
//	blobs/<alg>/<hex>   either format: a blob, verified        streamed to the store
//	Format.Files        a format's JSON files (index.json, …)  kept in memory
//	Format.LegacyBlob   a format's other blob names            streamed to the store
//	anything else       skipped, but every path is checked first
package imageimport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/reference"
)

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

// Store is what an import writes to: *wiring.Store in this process, or
// client.Store over the daemon's socket.
type Store interface {
	Content() content.Store
	Images() images.Store
	// Leases must hold a blob only if it is there, in one step.
	Leases() leases.Holder
}

// Options configure an Import (ocilayout.ImportOptions says what each
// does).
type Options struct {
	BaseName     string
	Digests      bool
	AllPlatforms bool
	Limits       Limits
	Logger       *slog.Logger
}

// Format is one archive format's part of an import.
type Format struct {
	// Name says what the format is, for the error about an archive that
	// is in none ("OCI image layout").
	Name string
	// Files are the JSON files at the top of the archive the format
	// reads, kept in memory; the first is the one that marks the format.
	Files []string
	// LegacyBlob, when set, reports whether a cleaned path outside blobs/
	// holds a blob of this format, and the digest its name promises (""
	// for none: the digest is computed, and a link there is followed).
	LegacyBlob func(name string) (want digest.Digest, ok bool)
	// Targets returns the images of the archive a, or nil when it is not
	// in this format (the next format is asked).
	Targets func(ctx context.Context, a *Archive) ([]Target, error)
}

// Names of what an import reads and writes.
const (
	annotationReferenceType = "vnd.docker.reference.type"
	maxLinks                = 8
	maxDepth                = 8
)

// Import reads an image archive from r in one pass and records its
// images, as the formats find them (the first format whose Targets
// returns any). Errors name the entry and the reason (see
// ocilayout.Import).
func Import(ctx context.Context, r io.Reader, st Store, o Options, formats ...Format) ([]images.Image, error) {
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
	lm := st.Leases()
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
	im := &Archive{cs: st.Content(), lm: lm, lease: l, lim: lim, base: base, o: o, formats: formats,
		files: map[string][]byte{}, blobs: map[string]ocispec.Descriptor{}, links: map[string]string{},
		seen: map[string]bool{}, have: map[digest.Digest]bool{}}
	if err := im.read(ctx, r); err != nil {
		return nil, err
	}
	var targets []Target
	for _, f := range formats {
		if targets, err = f.Targets(ctx, im); err != nil {
			return nil, err
		}
		if targets != nil {
			break
		}
	}
	if targets == nil {
		var what []string
		for _, f := range formats {
			what = append(what, fmt.Sprintf("%s (%s)", f.Files[0], f.Name))
		}
		return nil, fmt.Errorf("not an image archive: it has neither %s: %w", strings.Join(what, " nor "), errdefs.ErrInvalidArgument)
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
		if err := im.label(ctx, t.Desc, done, 0); err != nil {
			return nil, err
		}
	}
	return im.record(ctx, st.Images(), targets)
}

// File returns the JSON file name (one of a format's Files) if the
// archive has it.
func (im *Archive) File(name string) ([]byte, bool) {
	b, ok := im.files[name]
	return b, ok
}

// Content is the content store the archive's blobs went to; what a
// format reads there is held by the import's lease.
func (im *Archive) Content() content.Store { return im.cs }

// BaseName names what the archive leaves unnamed (Options.BaseName, or
// its default).
func (im *Archive) BaseName() string { return im.base }

// Digests says whether every image is also named BaseName@<digest>.
func (im *Archive) Digests() bool { return im.o.Digests }

// Logger gets what a format skips.
func (im *Archive) Logger() *slog.Logger { return im.o.Logger }

// Put stores a blob a format made (a manifest built for a legacy
// archive) under the import's lease.
func (im *Archive) Put(ctx context.Context, desc ocispec.Descriptor, body []byte) error {
	if err := content.WriteBlob(ctx, im.cs, "import-"+im.lease.ID+"-"+desc.Digest.String(), bytes.NewReader(body), desc); err != nil {
		return err
	}
	im.have[desc.Digest] = true
	return nil
}

// Archive is the state of one Import: what the pass over the tar found,
// which the formats read their images from.
type Archive struct {
	cs      content.Store
	lm      leases.Holder
	lease   leases.Lease
	lim     Limits
	base    string
	o       Options
	formats []Format

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

// Target is an image to record: its root descriptor, the names the
// archive gives it, and where it was found, for errors.
type Target struct {
	Desc  ocispec.Descriptor
	Names []string
	Where string
}
