package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/snapshots"
)

// whiteoutModes says how each snapshotter's trees carry whiteouts: as
// overlayfs reads them in an upper directory, or carried out on a copy.
var whiteoutModes = map[string]archive.WhiteoutMode{
	"overlayfs": archive.WhiteoutOverlay,
	"native":    archive.WhiteoutNative,
}

type applyRow struct {
	DiffID      digest.Digest `json:"diff_id"`
	Size        int64         `json:"size"`
	Compression string        `json:"compression"`
	Entries     int           `json:"entries"`
}

func layerApply(a *app, sf *snapshotterFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "apply KEY FILE|-",
		Short: "Apply a layer tar (plain, gzip or zstd) into the active snapshot KEY and print its diff ID",
		Long: `Unpacks the layer in FILE (- for standard input) into the active snapshot KEY,
carrying out its whiteouts, and prints its diff ID (the digest of the
uncompressed tar), its uncompressed size and its compression. Commit the
snapshot afterwards under the layer's chain ID. KEY must not be mounted
elsewhere while the layer is applied.`,
		Example: `  strata snapshots prepare extract-1
  strata layer apply extract-1 layer.tar.gz
  strata snapshots commit sha256:... extract-1`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, file := args[0], args[1]
			var in io.Reader = cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("layer apply: %w", err)
				}
				defer f.Close()
				in = f
			}
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, name string) error {
				mode, ok := whiteoutModes[name]
				if !ok {
					return fmt.Errorf("layer apply: snapshotter %s: %w", name, errdefs.ErrNotImplemented)
				}
				info, err := sn.Stat(ctx, key)
				if err != nil {
					return fmt.Errorf("layer apply: %w", err)
				}
				if info.Kind != snapshots.KindActive {
					return fmt.Errorf("layer apply: snapshot %q is %s, not active; apply into an active snapshot on it (strata snapshots prepare KEY %s): %w",
						key, info.Kind, key, errdefs.ErrFailedPrecondition)
				}
				mounts, err := sn.Mounts(ctx, key)
				if err != nil {
					return fmt.Errorf("layer apply: %w", err)
				}
				res, err := diff.Apply(ctx, mounts, in, mode)
				if err != nil {
					return fmt.Errorf("layer apply into snapshot %q: %w", key, err)
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					return printJSON(out, applyRow{res.DiffID, res.Size, res.Compression.String(), res.Entries})
				}
				if res.Compression == archive.Uncompressed {
					fmt.Fprintf(out, "%s (%d bytes, uncompressed)\n", res.DiffID, res.Size)
				} else {
					fmt.Fprintf(out, "%s (%d bytes uncompressed, %s)\n", res.DiffID, res.Size, res.Compression)
				}
				if res.SkippedDevices > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: %d device nodes not created: creating them needs root\n", res.SkippedDevices)
				}
				return nil
			})
		},
	}
}

func layerDiff(a *app, sf *snapshotterFlag) *cobra.Command {
	var (
		compression string
		leaseID     string
	)
	cmd := &cobra.Command{
		Use:   "diff KEY [--compression gzip|zstd|none]",
		Short: "Write the changes of snapshot KEY over its parent as a layer into the content store",
		Long: `Writes the layer that turns the parent of snapshot KEY into KEY (an OCI layer
tar with .wh. whiteouts, compressed) into the content store, labelled
containerd.io/uncompressed with its diff ID, and prints its descriptor. On
overlayfs the upper directory is read directly; otherwise both trees are
mounted read-only and compared. Like ctr, the blob is held by a lease that
expires in 24 hours (--lease names one of yours).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c archive.Compression
			switch compression {
			case "gzip":
				c = archive.Gzip
			case "zstd":
				c = archive.Zstd
			case "none", "uncompressed":
				c = archive.Uncompressed
			default:
				return usagef("--compression %q: want gzip, zstd or none", compression)
			}
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, _ string) error {
				ctx, err := withLease(ctx, s, leaseID, "layer-diff")
				if err != nil {
					return err
				}
				desc, err := diff.WriteSnapshotLayer(ctx, sn, args[0], s.Content(), diff.Options{Compression: c})
				if err != nil {
					return fmt.Errorf("layer diff of snapshot %q: %w", args[0], err)
				}
				info, err := s.Content().Info(ctx, desc.Digest)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					return printJSON(out, struct {
						ocispec.Descriptor
						DiffID string `json:"diff_id"`
					}{desc, info.Labels[labels.Uncompressed]})
				}
				t := newTable(out, "DIGEST", "SIZE", "MEDIA TYPE", "DIFF ID")
				t.row(desc.Digest.String(), humanSize(desc.Size), desc.MediaType, info.Labels[labels.Uncompressed])
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&compression, "compression", "gzip", "gzip, zstd or none")
	cmd.Flags().StringVar(&leaseID, "lease", "", "add the blob to this lease instead of a new one that expires in 24h")
	return cmd
}
