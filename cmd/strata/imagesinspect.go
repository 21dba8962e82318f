package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
)

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
			return a.withImage(cmd, args[0], func(ctx context.Context, s backend, img images.Image) error {
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
			})
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
			return a.withImage(cmd, args[0], func(ctx context.Context, s backend, img images.Image) error {
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
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "platform to show, e.g. linux/arm64 (default: the host's)")
	f.BoolVar(&noTrunc, "no-trunc", false, "show the commands whole")
	return cmd
}
