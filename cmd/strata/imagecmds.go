package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/reference"
)

// The everyday image verbs: check, tag, rm, inspect, history, label, prune.
func init() {
	imageVerbs = append(imageVerbs, imagesCheck, imagesTag, imagesRemove, imagesInspect, imagesHistory, imagesLabel, imagesPrune, imagesDiscardLayers)
}

// imageCheckPlatform is one platform of an image as images check -o json
// prints it.
type imageCheckPlatform struct {
	Platform    string          `json:"platform"`
	Manifest    digest.Digest   `json:"manifest"`
	Complete    bool            `json:"complete"`
	Present     int             `json:"present"`
	Needed      int             `json:"needed"`
	Size        int64           `json:"size"`
	PresentSize int64           `json:"present_size"`
	Missing     []digest.Digest `json:"missing,omitempty"`
	// Discarded are layers dropped after unpacking (discard-layers,
	// ctr content prune references): not damage.
	Discarded     []digest.Digest `json:"discarded,omitempty"`
	DiscardedSize int64           `json:"discarded_size,omitempty"`
}

// imageCheckRow is an image as images check -o json prints it. Present,
// Needed and the sizes are those of the platform checked, the host's.
type imageCheckRow struct {
	Name      string        `json:"name"`
	MediaType string        `json:"media_type"`
	Digest    digest.Digest `json:"digest"`
	// Status is complete, incomplete, missing (the target blob is not in
	// the store), unavailable (no manifest for the host) or error.
	Status            string               `json:"status"`
	Platform          string               `json:"platform"`
	Manifest          digest.Digest        `json:"manifest,omitempty"`
	Present           int                  `json:"present"`
	Needed            int                  `json:"needed"`
	Size              int64                `json:"size"`
	PresentSize       int64                `json:"present_size"`
	PlatformsComplete int                  `json:"platforms_complete"`
	PlatformsTotal    int                  `json:"platforms_total"`
	Discarded         int                  `json:"discarded,omitempty"`
	DiscardedSize     int64                `json:"discarded_size,omitempty"`
	Unpacked          []string             `json:"unpacked"`
	Platforms         []imageCheckPlatform `json:"platforms"`
	Error             string               `json:"error,omitempty"`
}

// statusText is the STATUS column: "complete (4/4)".
func (r imageCheckRow) statusText() string {
	switch r.Status {
	case "complete", "incomplete":
		if r.Discarded > 0 {
			return fmt.Sprintf("%s (%d/%d, %d layers discarded)", r.Status, r.Present, r.Needed, r.Discarded)
		}
		return fmt.Sprintf("%s (%d/%d)", r.Status, r.Present, r.Needed)
	case "unavailable":
		return "no " + r.Platform
	}
	return r.Status
}

// presenceOf tests presence against a listing of the namespace's blobs.
func presenceOf(sizes map[digest.Digest]int64) images.PresenceFunc {
	return func(_ context.Context, desc ocispec.Descriptor) (bool, error) {
		size, ok := sizes[desc.Digest]
		if ok && desc.Size > 0 && size != desc.Size {
			return true, fmt.Errorf("blob %s: descriptor says %d bytes, the store has %d: %w", desc.Digest, desc.Size, size, errdefs.ErrDataLoss)
		}
		return ok, nil
	}
}

// checkImage fills the row of img: every platform's status, and for the
// host's best match the summary and the snapshotters holding its top
// layer. A failure leaves the row in status error.
func checkImage(ctx context.Context, s backend, cs content.Provider, has images.PresenceFunc, host ocispec.Platform, img images.Image) (imageCheckRow, error) {
	row := imageCheckRow{Name: img.Name, MediaType: img.Target.MediaType, Digest: img.Target.Digest,
		Platform: images.FormatPlatform(host), Unpacked: []string{}, Platforms: []imageCheckPlatform{}}
	fail := func(err error) (imageCheckRow, error) {
		row.Status, row.Error = "error", err.Error()
		return row, err
	}
	sts, err := images.Check(ctx, cs, has, img.Target)
	if errors.Is(err, errdefs.ErrNotFound) {
		row.Status, row.Error = "missing", err.Error()
		return row, nil
	}
	if err != nil {
		return fail(err)
	}
	m := images.Only(host)
	best := -1
	for i, st := range sts {
		row.Platforms = append(row.Platforms, imageCheckPlatform{images.FormatPlatform(st.Platform), st.Manifest.Digest,
			st.Complete(), st.Present, st.Needed, st.Size, st.PresentSize, st.Missing, st.Discarded, st.DiscardedSize})
		row.PlatformsTotal++
		if st.Complete() {
			row.PlatformsComplete++
		}
		if st.Platform.OS != "" && m.Match(st.Platform) && (best < 0 || m.Less(st.Platform, sts[best].Platform)) {
			best = i
		}
	}
	if best < 0 {
		row.Status = "unavailable"
		return row, nil
	}
	st := sts[best]
	row.Platform, row.Manifest = images.FormatPlatform(st.Platform), st.Manifest.Digest
	row.Present, row.Needed, row.Size, row.PresentSize = st.Present, st.Needed, st.Size, st.PresentSize
	row.Discarded, row.DiscardedSize = len(st.Discarded), st.DiscardedSize
	row.Status = "incomplete"
	if st.Complete() {
		row.Status = "complete"
	}
	chain, err := chainIDs(ctx, cs, st.Manifest)
	if err != nil {
		return fail(err)
	}
	if len(chain) == 0 {
		return row, nil
	}
	top := chain[len(chain)-1].String()
	for _, name := range snapshotterNames {
		sn := s.Snapshotter(name)
		if sn == nil {
			continue
		}
		if _, err := sn.Stat(ctx, top); err == nil {
			row.Unpacked = append(row.Unpacked, name)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return fail(fmt.Errorf("snapshot %s in snapshotter %s: %w", top, name, err))
		}
	}
	return row, nil
}

func imagesCheck(a *app) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "check [FILTER...] [-v]",
		Short: "Check which blobs of each image are in the store, per platform, and where it is unpacked",
		Long: `Checks, for every image (or those the filters match), that the blobs each
platform needs are in the content store: its manifest, config and layers.
STATUS is the host platform's: "complete (4/4)" counts the blobs present over
the blobs needed. PLATFORMS says how many of the platforms the image offers
are complete (a pull fetches the layers of the host's only). SIZE is the
host platform's bytes present over bytes needed. UNPACKED names the
snapshotters that hold its top layer's snapshot. -v adds a row per
platform, with the digests missing.

An incomplete image is not an error; an image whose blobs cannot be read
is (exit 1).`,
		Example: `  strata images check
  strata images check -v name==docker.io/library/alpine:3.20
  strata images check -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			imgs, err := s.Images().List(ctx, args...)
			if err != nil {
				return err
			}
			cs := s.Content()
			sizes, err := blobSizes(ctx, cs)
			if err != nil {
				return err
			}
			has := presenceOf(sizes)
			host := images.DefaultPlatform()
			rows := []imageCheckRow{}
			failed := 0
			for _, img := range imgs {
				row, err := checkImage(ctx, s, cs, has, host, img)
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: check image %q: %v\n", img.Name, err)
					failed++
				}
				rows = append(rows, row)
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				if err := printJSON(out, rows); err != nil {
					return err
				}
			} else {
				t := newTable(out, "REF", "TYPE", "DIGEST", "STATUS", "PLATFORMS", "SIZE", "UNPACKED")
				for _, r := range rows {
					platforms, size, unpacked := "-", "-", "-"
					if r.PlatformsTotal > 0 {
						platforms = fmt.Sprintf("%d/%d platforms complete", r.PlatformsComplete, r.PlatformsTotal)
					}
					if r.Needed > 0 {
						size = humanSize(r.PresentSize) + "/" + humanSize(r.Size)
					}
					if len(r.Unpacked) > 0 {
						unpacked = strings.Join(r.Unpacked, ",")
					}
					t.row(r.Name, r.MediaType, r.Digest.String(), r.statusText(), platforms, size, unpacked)
				}
				if err := t.flush(); err != nil {
					return err
				}
				if verbose {
					fmt.Fprintln(out)
					t := newTable(out, "REF", "PLATFORM", "MANIFEST", "STATUS", "SIZE", "MISSING")
					for _, r := range rows {
						for _, p := range r.Platforms {
							status := "incomplete"
							if p.Complete {
								status = "complete"
							}
							missing := "-"
							if len(p.Missing) > 0 {
								ms := make([]string, len(p.Missing))
								for i, d := range p.Missing {
									ms[i] = d.String()
								}
								missing = strings.Join(ms, ",")
							}
							t.row(r.Name, p.Platform, p.Manifest.String(), fmt.Sprintf("%s (%d/%d)", status, p.Present, p.Needed),
								humanSize(p.PresentSize)+"/"+humanSize(p.Size), missing)
						}
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d images could not be checked", failed, len(imgs))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also show every platform, with the blobs it lacks")
	return cmd
}

func imagesTag(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "tag SRC DST... [--force]",
		Short: "Give an image more names",
		Long: `Records each DST as a name of the image SRC: the same target and labels.
Names are normalised (app:1 is docker.io/library/app:1). A DST that names an
image already is an error unless --force, which points it at SRC's target.`,
		Example: `  strata images tag docker.io/library/alpine:3.20 alpine:stable 127.0.0.1:5000/alpine:3.20
  strata images tag --force 127.0.0.1:5000/app:2 127.0.0.1:5000/app:latest`,
		Args: minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dsts []reference.Reference
			for _, arg := range args[1:] {
				r, err := reference.Parse(arg)
				if err != nil {
					return usageError{err}
				}
				dsts = append(dsts, r)
			}
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			is := s.Images()
			src, err := resolveImage(ctx, is, a.namespace, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tagged := []string{}
			for _, r := range dsts {
				if err := tagImage(ctx, is, src, r, force); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: %v\n", err)
					continue
				}
				tagged = append(tagged, r.String())
				if a.output != "json" {
					fmt.Fprintln(out, r.String())
				}
			}
			if a.output == "json" {
				if err := printJSON(out, tagged); err != nil {
					return err
				}
			}
			if n := len(dsts) - len(tagged); n > 0 {
				return fmt.Errorf("%d of %d names not tagged", n, len(dsts))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "point an existing DST at SRC instead of failing")
	return cmd
}

// tagImage records dst as a name of src.
func tagImage(ctx context.Context, is images.Store, src images.Image, dst reference.Reference, force bool) error {
	if dst.Digest != "" && dst.Digest != src.Target.Digest {
		return fmt.Errorf("tag %s: the reference pins %s but image %q is %s: %w", dst, dst.Digest, src.Name, src.Target.Digest, errdefs.ErrInvalidArgument)
	}
	img := images.Image{Name: dst.String(), Target: src.Target, Labels: src.Labels}
	_, err := is.Create(ctx, img)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		if !force {
			return fmt.Errorf("tag %s: %w (--force points it at %s)", dst, err, src.Name)
		}
		// One update, not delete and create: no moment without the
		// name, and nothing for garbage collection to take meanwhile.
		_, err = is.Update(ctx, img, "target", "labels")
	}
	if err != nil {
		return fmt.Errorf("tag %s: %w", dst, err)
	}
	return nil
}

// storeHoldings is what a namespace holds, to tell what a collection
// removed: blob records with their sizes and snapshots per snapshotter.
type storeHoldings struct {
	blobs     map[digest.Digest]int64
	snapshots map[string]bool // "<snapshotter>/<name>"
}

func readHoldings(ctx context.Context, s backend) (storeHoldings, error) {
	h := storeHoldings{snapshots: map[string]bool{}}
	var err error
	if h.blobs, err = blobSizes(ctx, s.Content()); err != nil {
		return h, err
	}
	for _, name := range snapshotterNames {
		sn := s.Snapshotter(name)
		if sn == nil {
			continue
		}
		infos, err := walkAll(ctx, sn)
		if err != nil {
			return h, fmt.Errorf("snapshotter %s: %w", name, err)
		}
		for _, info := range infos {
			h.snapshots[name+"/"+info.Name] = true
		}
	}
	return h, nil
}

// imagesFreed is what removing images released from the namespace once
// garbage collection ran: blob records (the bytes on disk go with the last
// namespace using them) and snapshots.
type imagesFreed struct {
	Blobs     int   `json:"blobs_removed"`
	BlobBytes int64 `json:"blob_bytes_removed"`
	Snapshots int   `json:"snapshots_removed"`
}

func (f imagesFreed) String() string {
	return fmt.Sprintf("removed %d blobs (%s) and %d snapshots", f.Blobs, humanSize(f.BlobBytes), f.Snapshots)
}

func freedSince(before, after storeHoldings) imagesFreed {
	var f imagesFreed
	for d, size := range before.blobs {
		if _, ok := after.blobs[d]; !ok {
			f.Blobs++
			f.BlobBytes += size
		}
	}
	for k := range before.snapshots {
		if !after.snapshots[k] {
			f.Snapshots++
		}
	}
	return f
}

// imagesRemoved is what images rm and prune print with -o json.
type imagesRemoved struct {
	Removed []string     `json:"removed"`
	Freed   *imagesFreed `json:"freed,omitempty"`
}

// removeImagesAndCollect deletes names, printing each one removed (table output)
// and each failure, and with collect runs garbage collection and measures
// what it freed. It returns how many were not removed.
func removeImagesAndCollect(ctx context.Context, a *app, cmd *cobra.Command, s backend, names []string, collect bool) (imagesRemoved, int, error) {
	res := imagesRemoved{Removed: []string{}}
	var before storeHoldings
	if collect {
		var err error
		if before, err = readHoldings(ctx, s); err != nil {
			return res, 0, err
		}
	}
	failed := 0
	for _, name := range names {
		if err := s.Images().Delete(ctx, name); err != nil {
			if ctx.Err() != nil {
				return res, failed, err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "strata: remove image %q: %v\n", name, err)
			failed++
			continue
		}
		res.Removed = append(res.Removed, name)
		if a.output != "json" {
			fmt.Fprintln(cmd.OutOrStdout(), name)
		}
	}
	if !collect {
		return res, failed, nil
	}
	// What images.SynchronousDelete does, once for all the names; the
	// listing after says what this collection (or a scheduled one that
	// ran meanwhile) removed.
	if len(res.Removed) > 0 {
		if _, err := s.Run(ctx, jobs.Request{GC: &jobs.GCRequest{}}, jobs.Env{Logger: a.logger}); err != nil {
			return res, failed, fmt.Errorf("images removed, but garbage collection: %w", err)
		}
	}
	after, err := readHoldings(ctx, s)
	if err != nil {
		return res, failed, err
	}
	f := freedSince(before, after)
	res.Freed = &f
	return res, failed, nil
}

func imagesRemove(a *app) *cobra.Command {
	var sync, force bool
	cmd := &cobra.Command{
		Use:     "rm REF... [--sync]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove images; garbage collection then frees what no other image uses",
		Long: `Removes the image records REF... A REF that names no image is reported and
the others are still removed (exit 1), and so is a mounted image, unless
--force (its mount keeps working: the snapshot holds the layers). The blobs
and snapshots only these images used are freed by the garbage collection
that follows: in the background, or with --sync before the command returns,
which then says what it removed from the namespace.`,
		Example: `  strata images rm docker.io/library/alpine:3.20
  strata images rm --sync alpine:3.19 alpine:3.20`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			var names []string
			failed := 0
			mounted, err := mountedImages(ctx, s)
			if err != nil {
				return err
			}
			for _, arg := range args {
				img, err := resolveImage(ctx, s.Images(), a.namespace, arg)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: %v\n", err)
					failed++
					continue
				}
				if mounted[img.Name] && !force {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: image %s is mounted (strata images unmount it first, or --force)\n", img.Name)
					failed++
					continue
				}
				if !slices.Contains(names, img.Name) {
					names = append(names, img.Name)
				}
			}
			res, notRemoved, err := removeImagesAndCollect(ctx, a, cmd, s, names, sync)
			if err != nil {
				return err
			}
			failed += notRemoved
			out := cmd.OutOrStdout()
			if a.output == "json" {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else if res.Freed != nil {
				fmt.Fprintln(out, res.Freed)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d images not removed", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&sync, "sync", false, "collect garbage before returning and say what was freed")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove mounted images too")
	return cmd
}

// inspectPlatform parses a --platform value; "" is none.
func inspectPlatform(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := images.ParsePlatform(s)
	if err != nil {
		return nil, usageError{fmt.Errorf("--platform: %w", err)}
	}
	return &p, nil
}

// shownManifest returns the manifest of img that inspect and history show:
// the best match of p (the host's when nil) under an index; a lone
// manifest whatever its platform unless p is given.
func shownManifest(ctx context.Context, cs content.Provider, img images.Image, p *ocispec.Platform) (ocispec.Descriptor, ocispec.Manifest, error) {
	if images.IsManifest(img.Target.MediaType) && p == nil {
		m, err := images.ReadManifest(ctx, cs, img.Target)
		return img.Target, m, err
	}
	want := images.DefaultPlatform()
	if p != nil {
		want = *p
	}
	return images.Manifest(ctx, cs, img.Target, images.Only(want))
}

// imageInspect is what images inspect prints: the record, and the index,
// manifest and config exactly as stored.
type imageInspect struct {
	Name           string             `json:"name"`
	Labels         map[string]string  `json:"labels,omitempty"`
	CreatedAt      time.Time          `json:"created_at"`
	UpdatedAt      time.Time          `json:"updated_at"`
	Target         ocispec.Descriptor `json:"target"`
	Index          json.RawMessage    `json:"index,omitempty"`
	Platform       string             `json:"platform"`
	ManifestDigest digest.Digest      `json:"manifest_digest"`
	Manifest       json.RawMessage    `json:"manifest"`
	Config         json.RawMessage    `json:"config"`
}

func imagesInspect(a *app) *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:   "inspect REF [--platform P]",
		Short: "Print an image's record, index, manifest and config as JSON",
		Long: `Prints the image REF as JSON: its record (name, labels, target), its index
when it has one, and the manifest and config of the host's platform (or
--platform), as stored. Fails naming the blob when one of them is not in
the store.`,
		Example: `  strata images inspect alpine:3.20
  strata images inspect --platform linux/arm64 alpine:3.20 | jq .config.config.Env`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := inspectPlatform(platform)
			if err != nil {
				return err
			}
			ctx := a.ctx(cmd)
			s, img, err := a.openImage(ctx, args[0])
			if err != nil {
				return err
			}
			cs := s.Content()
			res, err := inspectImage(ctx, cs, img, p)
			if err != nil {
				return fmt.Errorf("image %q: %w", img.Name, err)
			}
			// As stored: no \u0026 escapes of the encoder's own in the
			// blobs.
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform to show, e.g. linux/arm64 (default: the host's)")
	return cmd
}

func inspectImage(ctx context.Context, cs content.Provider, img images.Image, p *ocispec.Platform) (imageInspect, error) {
	res := imageInspect{Name: img.Name, Labels: img.Labels, CreatedAt: img.CreatedAt, UpdatedAt: img.UpdatedAt, Target: img.Target}
	if images.IsIndex(img.Target.MediaType) {
		// Parsed first for its checks and errors, then shown as stored.
		if _, err := images.ReadIndex(ctx, cs, img.Target); err != nil {
			return res, err
		}
		b, err := content.ReadBlob(ctx, cs, img.Target, images.MaxManifestSize)
		if err != nil {
			return res, err
		}
		res.Index = b
	}
	desc, m, err := shownManifest(ctx, cs, img, p)
	if err != nil {
		return res, err
	}
	if res.Manifest, err = content.ReadBlob(ctx, cs, desc, images.MaxManifestSize); err != nil {
		return res, err
	}
	res.ManifestDigest = desc.Digest
	cfg, err := images.ReadConfig(ctx, cs, m.Config)
	if err != nil {
		return res, err
	}
	if res.Config, err = content.ReadBlob(ctx, cs, m.Config, images.MaxConfigSize); err != nil {
		return res, err
	}
	if desc.Platform != nil {
		res.Platform = images.FormatPlatform(*desc.Platform)
	} else {
		res.Platform = images.FormatPlatform(cfg.Platform)
	}
	return res, nil
}

// historyRow is one step of an image's history, as images history -o json
// prints it.
type historyRow struct {
	Created    *time.Time    `json:"created,omitempty"`
	CreatedBy  string        `json:"created_by"`
	Size       int64         `json:"size"`
	Comment    string        `json:"comment,omitempty"`
	EmptyLayer bool          `json:"empty_layer"`
	Layer      digest.Digest `json:"layer,omitempty"`
}

// imageHistory pairs the config's history with the manifest's layers, as
// docker history does: each step that is not an empty layer owns the next
// layer. Without history, each layer is a step of its own. Newest first.
func imageHistory(m ocispec.Manifest, cfg ocispec.Image) []historyRow {
	rows := []historyRow{}
	next := 0
	for _, h := range cfg.History {
		r := historyRow{Created: h.Created, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer && next < len(m.Layers) {
			r.Size, r.Layer = m.Layers[next].Size, m.Layers[next].Digest
			next++
		}
		rows = append(rows, r)
	}
	if len(cfg.History) == 0 {
		for _, l := range m.Layers {
			rows = append(rows, historyRow{Size: l.Size, Layer: l.Digest})
		}
	}
	slices.Reverse(rows)
	return rows
}

// tableCell makes s fit a table cell: tabs and line breaks become spaces,
// and, with limit > 0, at most limit characters remain.
func tableCell(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); limit > 0 && len(r) > limit {
		return string(r[:limit-1]) + "…"
	}
	return s
}

func imagesHistory(a *app) *cobra.Command {
	var (
		platform string
		noTrunc  bool
	)
	cmd := &cobra.Command{
		Use:   "history REF [--platform P]",
		Short: "Show how an image was built: its history, newest step first",
		Long: `Shows the history of the image REF for the host's platform (or --platform),
as docker history does: when each step was made, by what command, and the
size of the layer it added (the compressed blob; 0 B for steps that added
none).`,
		Example: `  strata images history alpine:3.20
  strata images history --no-trunc -o json 127.0.0.1:5000/app:1`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := inspectPlatform(platform)
			if err != nil {
				return err
			}
			ctx := a.ctx(cmd)
			s, img, err := a.openImage(ctx, args[0])
			if err != nil {
				return err
			}
			cs := s.Content()
			_, m, err := shownManifest(ctx, cs, img, p)
			if err != nil {
				return fmt.Errorf("image %q: %w", img.Name, err)
			}
			cfg, err := images.ReadConfig(ctx, cs, m.Config)
			if err != nil {
				return fmt.Errorf("image %q: %w", img.Name, err)
			}
			rows := imageHistory(m, cfg)
			out := cmd.OutOrStdout()
			if a.output == "json" {
				return printJSON(out, rows)
			}
			limit := 45
			if noTrunc {
				limit = 0
			}
			t := newTable(out, "CREATED", "CREATED BY", "SIZE", "COMMENT")
			for _, r := range rows {
				created := "-"
				if r.Created != nil {
					created = age(*r.Created)
				}
				t.row(created, tableCell(r.CreatedBy, limit), humanSize(r.Size), tableCell(r.Comment, 0))
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "platform to show, e.g. linux/arm64 (default: the host's)")
	f.BoolVar(&noTrunc, "no-trunc", false, "show the commands whole")
	return cmd
}

// printLabels prints labels one k=v a line, sorted, or as a JSON object.
func printLabels(a *app, cmd *cobra.Command, labels map[string]string) error {
	out := cmd.OutOrStdout()
	if a.output == "json" {
		if labels == nil {
			labels = map[string]string{}
		}
		return printJSON(out, labels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "%s=%s\n", k, labels[k])
	}
	return nil
}

func imagesLabel(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "label REF KEY=VALUE...",
		Short: "Set labels on an image (KEY= removes one) and print its labels",
		Example: `  strata images label alpine:3.20 team=infra
  strata images label alpine:3.20 team=`,
		Args: minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			ctx := a.ctx(cmd)
			s, img, err := a.openImage(ctx, args[0])
			if err != nil {
				return err
			}
			paths := make([]string, 0, len(labels))
			for k := range labels {
				paths = append(paths, "labels."+k)
			}
			updated, err := s.Images().Update(ctx, images.Image{Name: img.Name, Labels: labels}, paths...)
			if err != nil {
				return err
			}
			return printLabels(a, cmd, updated.Labels)
		},
	}
}

// danglingImage reports whether name is an image name without a tag,
// name@sha256:…, as imports with digests and pulls by digest make.
func danglingImage(name string) bool {
	r, err := reference.Parse(name)
	return err == nil && r.Digest != "" && r.Tag == ""
}

// mountedImages returns the names of the images strata images mount has
// a snapshot of, in any snapshotter.
func mountedImages(ctx context.Context, s backend) (map[string]bool, error) {
	inUse := map[string]bool{}
	for _, name := range snapshotterNames {
		sn := s.Snapshotter(name)
		if sn == nil {
			continue
		}
		infos, err := walkAll(ctx, sn)
		if err != nil {
			return nil, fmt.Errorf("snapshotter %s: %w", name, err)
		}
		for _, info := range infos {
			if img := info.Labels[labels.MountImage]; img != "" {
				inUse[img] = true
			}
		}
	}
	return inUse, nil
}

func imagesPrune(a *app) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [--all] [--force] [FILTER...]",
		Short: "Remove dangling images (name@digest, no tag), or with --all every image not mounted",
		Long: `Removes the dangling images: those named by a digest without a tag
(name@sha256:…), as pulls by digest and imports with digests make. With
--all it removes every image that is not in use, that is not mounted by
strata images mount. Filters narrow the images considered. It asks first
unless --force, then collects garbage and prints the names removed and
what was freed.`,
		Example: `  strata images prune --force
  strata images prune --all 'name~=^127\.0\.0\.1:5000/'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			imgs, err := s.Images().List(ctx, args...)
			if err != nil {
				return err
			}
			inUse, err := mountedImages(ctx, s)
			if err != nil {
				return err
			}
			var names []string
			for _, img := range imgs {
				if inUse[img.Name] || !all && !danglingImage(img.Name) {
					continue
				}
				names = append(names, img.Name)
			}
			if len(names) > 0 && !force {
				errw := cmd.ErrOrStderr()
				fmt.Fprintf(errw, "This removes %d image(s):\n", len(names))
				for _, n := range names {
					fmt.Fprintf(errw, "  %s\n", n)
				}
				fmt.Fprint(errw, "Continue? [y/N] ")
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
					fmt.Fprintln(errw, "nothing removed")
					return nil
				}
			}
			res, failed, err := removeImagesAndCollect(ctx, a, cmd, s, names, true)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(out, res.Freed)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d images not removed", failed, len(names))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "remove every image not mounted, not only dangling ones")
	f.BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}

func imagesDiscardLayers(a *app) *cobra.Command {
	var noGC bool
	cmd := &cobra.Command{
		Use:   "discard-layers [FILTER...]",
		Short: "Free the compressed layers of unpacked images; their snapshots stay",
		Long: `Drops the layer references of every unpacked image (or those the filters
match), as ctr content prune references does, then collects garbage: the
compressed layer blobs no other image references are freed, while each image
stays unpacked and mounts the same tree. Only images whose layers are
unpacked are changed. images check shows the layers as discarded, not
missing; push and export fetch them again from the registry they came from.
stratad's discard_unpacked_layers does this after every pull.`,
		Example: `  strata images discard-layers
  strata images discard-layers name==docker.io/library/debian:12`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			imgs, err := s.Images().List(ctx, args...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			type row struct {
				Name        string          `json:"name"`
				Manifests   []digest.Digest `json:"manifests"`
				NotUnpacked []digest.Digest `json:"not_unpacked,omitempty"`
			}
			rows := []row{}
			for _, img := range imgs {
				res, err := images.DiscardLayers(ctx, s.Content(), img.Target)
				if err != nil {
					return fmt.Errorf("discard layers of %q: %w", img.Name, err)
				}
				rows = append(rows, row{img.Name, res.Manifests, res.NotUnpacked})
				if a.output != "json" {
					switch {
					case len(res.Manifests) > 0:
						fmt.Fprintf(out, "%s: layers of %d manifest(s) discarded\n", img.Name, len(res.Manifests))
					case len(res.NotUnpacked) > 0:
						fmt.Fprintf(out, "%s: not unpacked, kept\n", img.Name)
					}
				}
			}
			var freed int64
			if !noGC {
				res, err := s.Run(ctx, jobs.Request{GC: &jobs.GCRequest{}}, jobs.Env{Logger: a.logger})
				if err != nil {
					return err
				}
				freed = res.GC.BytesFreed
			}
			if a.output == "json" {
				return printJSON(out, map[string]any{"images": rows, "bytes_freed": freed})
			}
			if !noGC {
				fmt.Fprintf(out, "freed %s\n", humanSize(freed))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noGC, "no-gc", false, "only drop the references; the next collection frees the layers")
	return cmd
}
