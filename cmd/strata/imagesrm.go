package main

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/reference"
)

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
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
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
			})
		},
	}
	cmd.Flags().BoolVar(&sync, "sync", false, "collect garbage before returning and say what was freed")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove mounted images too")
	return cmd
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
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
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
			})
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
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
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
			})
		},
	}
	cmd.Flags().BoolVar(&noGC, "no-gc", false, "only drop the references; the next collection frees the layers")
	return cmd
}
