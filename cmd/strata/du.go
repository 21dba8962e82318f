package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/images"
)

// duShare splits the bytes of an image into those other images use too and
// those only it uses.
type duShare struct {
	Total  int64 `json:"total"`
	Shared int64 `json:"shared"`
	Unique int64 `json:"unique"`
}

// duImage is one image's disk usage.
type duImage struct {
	Name      string  `json:"name"`
	Blobs     duShare `json:"blobs"`
	Snapshots duShare `json:"snapshots"`
	// Discarded is the bytes of compressed layers dropped after unpacking
	// (images discard-layers, discard_unpacked_layers): the saving, not
	// damage.
	Discarded int64 `json:"discarded"`
}

// duTotal is the usage of all the blobs or all the snapshots of the
// namespace; Reclaimable is what no image reaches.
type duTotal struct {
	Count       int   `json:"count"`
	Size        int64 `json:"size"`
	Reclaimable int64 `json:"reclaimable"`
}

type duReport struct {
	Images []duImage `json:"images"`
	Store  struct {
		Blobs     duTotal `json:"blobs"`
		Snapshots duTotal `json:"snapshots"`
	} `json:"store"`
}

// snapshotRef names a snapshot in one of the snapshotters.
type snapshotRef struct{ snapshotter, key string }

func newDuCommand(a *app) *cobra.Command {
	var bytes bool
	cmd := &cobra.Command{
		Use:   "du [REF...]",
		Short: "Show the disk space images take, shared and unique, and what no image uses",
		Long: `Shows, for each image (all, or the REFs given), the bytes of its blobs in the
content store and of its unpacked layer snapshots (in every snapshotter that
has them), split into what other images use too (SHARED) and what only it
uses (UNIQUE): removing an image frees at most its unique bytes; DISCARDED
is the compressed layers dropped after unpacking (images discard-layers).
Then the
totals of the namespace: all blobs, all snapshots (active ones and views
included), and how much of each no image reaches (RECLAIMABLE; garbage
collection frees it unless a lease or a gc.root label holds it).

Snapshot sizes are what each snapshot holds itself, without its parents.`,
		Example: `  strata du
  strata du -b docker.io/library/alpine:3.20
  strata du -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				rep, err := diskUsage(ctx, s, a.namespace, args)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					return printJSON(out, rep)
				}
				size := humanSize
				if bytes {
					size = func(n int64) string { return fmt.Sprint(n) }
				}
				t := newTable(out, "REF", "BLOBS", "SHARED", "UNIQUE", "SNAPSHOTS", "SHARED", "UNIQUE", "DISCARDED")
				for _, img := range rep.Images {
					discarded := "-"
					if img.Discarded > 0 {
						discarded = size(img.Discarded)
					}
					t.row(img.Name, size(img.Blobs.Total), size(img.Blobs.Shared), size(img.Blobs.Unique),
						size(img.Snapshots.Total), size(img.Snapshots.Shared), size(img.Snapshots.Unique), discarded)
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(out)
				t = newTable(out, "TYPE", "COUNT", "SIZE", "RECLAIMABLE")
				t.row("blobs", fmt.Sprint(rep.Store.Blobs.Count), size(rep.Store.Blobs.Size), size(rep.Store.Blobs.Reclaimable))
				t.row("snapshots", fmt.Sprint(rep.Store.Snapshots.Count), size(rep.Store.Snapshots.Size), size(rep.Store.Snapshots.Reclaimable))
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&bytes, "bytes", "b", false, "show sizes in bytes")
	return cmd
}

// diskUsage measures the images refs (all when none) against every image
// of the namespace.
func diskUsage(ctx context.Context, s backend, namespace string, refs []string) (duReport, error) {
	var rep duReport
	all, err := s.Images().List(ctx)
	if err != nil {
		return rep, err
	}
	selected := all
	if len(refs) > 0 {
		selected = nil
		seen := map[string]bool{}
		for _, ref := range refs {
			img, err := resolveImage(ctx, s.Images(), namespace, ref)
			if err != nil {
				return rep, err
			}
			if !seen[img.Name] {
				seen[img.Name] = true
				selected = append(selected, img)
			}
		}
	}

	cs := s.Content()
	sizes, err := blobSizes(ctx, cs)
	if err != nil {
		return rep, err
	}
	// Every snapshot of the namespace, with its usage.
	usage := map[snapshotRef]int64{}
	var names []string
	for _, name := range snapshotterNames {
		sn := s.Snapshotter(name)
		if sn == nil {
			continue
		}
		names = append(names, name)
		infos, err := walkAll(ctx, sn)
		if err != nil {
			return rep, err
		}
		for _, info := range infos {
			u, err := sn.Usage(ctx, info.Name)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue // removed since the walk
			}
			if err != nil {
				return rep, fmt.Errorf("usage of snapshot %q in snapshotter %s: %w", info.Name, name, err)
			}
			usage[snapshotRef{name, info.Name}] = u.Size
		}
	}

	// What each image holds, and how many images hold each thing.
	type holding struct {
		blobs     map[digest.Digest]int64
		snapshots map[snapshotRef]int64
	}
	held := map[string]holding{}
	discarded := map[string]int64{}
	blobUsers := map[digest.Digest]int{}
	snapshotUsers := map[snapshotRef]int{}
	for _, img := range all {
		parts, err := readImageParts(ctx, cs, sizes, img.Target)
		if err != nil {
			return rep, fmt.Errorf("image %q: %w", img.Name, err)
		}
		h := holding{blobs: parts.blobs, snapshots: map[snapshotRef]int64{}}
		for _, m := range parts.manifests {
			sts, err := images.Check(ctx, cs, presenceOf(sizes), m)
			if err != nil {
				return rep, fmt.Errorf("image %q: %w", img.Name, err)
			}
			for _, st := range sts {
				discarded[img.Name] += st.DiscardedSize
			}
			chain, err := chainIDs(ctx, cs, m)
			if err != nil {
				return rep, fmt.Errorf("image %q: %w", img.Name, err)
			}
			for _, name := range names {
				for _, id := range chain {
					ref := snapshotRef{name, id.String()}
					if u, ok := usage[ref]; ok {
						h.snapshots[ref] = u
					}
				}
			}
		}
		held[img.Name] = h
		for d := range h.blobs {
			blobUsers[d]++
		}
		for ref := range h.snapshots {
			snapshotUsers[ref]++
		}
	}

	rep.Images = []duImage{}
	for _, img := range selected {
		h := held[img.Name]
		row := duImage{Name: img.Name, Discarded: discarded[img.Name]}
		for d, size := range h.blobs {
			row.Blobs.Total += size
			if blobUsers[d] > 1 {
				row.Blobs.Shared += size
			}
		}
		for ref, size := range h.snapshots {
			row.Snapshots.Total += size
			if snapshotUsers[ref] > 1 {
				row.Snapshots.Shared += size
			}
		}
		row.Blobs.Unique = row.Blobs.Total - row.Blobs.Shared
		row.Snapshots.Unique = row.Snapshots.Total - row.Snapshots.Shared
		rep.Images = append(rep.Images, row)
	}
	sort.Slice(rep.Images, func(i, j int) bool { return rep.Images[i].Name < rep.Images[j].Name })

	for d, size := range sizes {
		rep.Store.Blobs.Count++
		rep.Store.Blobs.Size += size
		if blobUsers[d] == 0 {
			rep.Store.Blobs.Reclaimable += size
		}
	}
	for ref, size := range usage {
		rep.Store.Snapshots.Count++
		rep.Store.Snapshots.Size += size
		if snapshotUsers[ref] == 0 {
			rep.Store.Snapshots.Reclaimable += size
		}
	}
	return rep, nil
}
