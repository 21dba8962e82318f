package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

// mountKeyPrefix starts the key of the snapshot that strata images mount
// makes for a directory; the absolute directory follows, so that unmount
// finds it from the directory alone.
const mountKeyPrefix = "strata-mount:"

// attestationAnnotation marks BuildKit's attestation manifests, which are
// not runnable images.
const attestationAnnotation = "vnd.docker.reference.type"

// resolveImage finds the image arg names: by its normalised reference
// (alpine is docker.io/library/alpine:latest) or else by the name as
// given. It returns errdefs.ErrNotFound naming both.
func resolveImage(ctx context.Context, is images.Store, namespace, arg string) (images.Image, error) {
	normalised := ""
	if r, err := reference.Parse(arg); err == nil {
		normalised = r.String()
		img, err := is.Get(ctx, normalised)
		if !errors.Is(err, errdefs.ErrNotFound) {
			return img, err
		}
	}
	if normalised != arg {
		img, err := is.Get(ctx, arg)
		if !errors.Is(err, errdefs.ErrNotFound) {
			return img, err
		}
	}
	if normalised != "" && normalised != arg {
		return images.Image{}, fmt.Errorf("image %q (%s) in namespace %q: %w", arg, normalised, namespace, errdefs.ErrNotFound)
	}
	return images.Image{}, fmt.Errorf("image %q in namespace %q: %w", arg, namespace, errdefs.ErrNotFound)
}

// blobSizes returns the size of every blob of the namespace.
func blobSizes(ctx context.Context, cs content.Manager) (map[digest.Digest]int64, error) {
	sizes := map[digest.Digest]int64{}
	err := cs.Walk(ctx, func(info content.Info) error {
		sizes[info.Digest] = info.Size
		return nil
	})
	return sizes, err
}

// imageParts is what of an image the store holds.
type imageParts struct {
	// blobs are the blobs reachable from the target that are present
	// (index, manifests, configs, layers), with their sizes.
	blobs map[digest.Digest]int64
	// manifests are the image manifests present, attestations left out.
	manifests []ocispec.Descriptor
}

func (p imageParts) size() int64 {
	var n int64
	for _, s := range p.blobs {
		n += s
	}
	return n
}

// readImageParts walks the graph under target through the blobs present
// (sizes), as garbage collection does: a platform never fetched is simply
// not there.
func readImageParts(ctx context.Context, p content.Provider, sizes map[digest.Digest]int64, target ocispec.Descriptor) (imageParts, error) {
	parts := imageParts{blobs: map[digest.Digest]int64{}}
	var walk func(desc ocispec.Descriptor) error
	walk = func(desc ocispec.Descriptor) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		size, ok := sizes[desc.Digest]
		if !ok {
			return nil
		}
		if _, seen := parts.blobs[desc.Digest]; seen {
			return nil
		}
		parts.blobs[desc.Digest] = size
		if images.IsManifest(desc.MediaType) && desc.Annotations[attestationAnnotation] != "attestation-manifest" {
			parts.manifests = append(parts.manifests, desc)
		}
		children, err := images.Children(ctx, p, desc)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil // removed since the walk of sizes
			}
			return err
		}
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk(target)
	return parts, err
}

// chainIDs returns the chain IDs of the layers of the manifest desc, or
// none when the manifest or its config is not in the store.
func chainIDs(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]digest.Digest, error) {
	m, err := images.ReadManifest(ctx, p, desc)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	diffIDs, err := images.RootFS(ctx, p, m)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return images.ChainIDs(diffIDs), nil
}

// imageRow is an image as images ls -o json prints it.
type imageRow struct {
	Name      string            `json:"name"`
	MediaType string            `json:"media_type"`
	Digest    digest.Digest     `json:"digest"`
	Size      int64             `json:"size"`
	Platforms []string          `json:"platforms"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func imagesList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List images, optionally filtered (name, target.digest, target.mediatype, labels.KEY)",
		Long: `Lists the images of the namespace as ctr does. SIZE is what the image takes
in the content store for the platforms it has there: its index, manifests,
configs and layers, each counted once. PLATFORMS are all the platforms the
image offers, fetched or not.`,
		Example: `  strata images ls
  strata images ls -q 'name~=^docker.io/library/'
  strata images ls labels.team==a`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				imgs, err := s.Images().List(ctx, args...)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if quiet && a.output != "json" {
					for _, img := range imgs {
						fmt.Fprintln(out, img.Name)
					}
					return nil
				}
				cs := s.Content()
				sizes, err := blobSizes(ctx, cs)
				if err != nil {
					return err
				}
				rows := []imageRow{}
				for _, img := range imgs {
					parts, err := readImageParts(ctx, cs, sizes, img.Target)
					if err != nil {
						return fmt.Errorf("image %q: %w", img.Name, err)
					}
					platforms := []string{}
					ps, err := images.Platforms(ctx, cs, img.Target)
					if err != nil {
						// A partial image still lists; say what is missing.
						fmt.Fprintf(cmd.ErrOrStderr(), "strata: platforms of image %q: %v\n", img.Name, err)
					}
					for _, p := range ps {
						platforms = append(platforms, images.FormatPlatform(p))
					}
					rows = append(rows, imageRow{img.Name, img.Target.MediaType, img.Target.Digest, parts.size(),
						platforms, img.Labels, img.CreatedAt, img.UpdatedAt})
				}
				if a.output == "json" {
					return printJSON(out, rows)
				}
				t := newTable(out, "REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS")
				for _, r := range rows {
					platforms := strings.Join(r.Platforms, ",")
					if platforms == "" {
						platforms = "-"
					}
					t.row(r.Name, r.MediaType, r.Digest.String(), humanSize(r.Size), platforms, labelString(r.Labels))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	return cmd
}
