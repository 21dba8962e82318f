package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
)

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
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
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
			})
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also show every platform, with the blobs it lacks")
	return cmd
}
