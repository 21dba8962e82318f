package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/reference"
)

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
				r, err := parseReference(arg)
				if err != nil {
					return err
				}
				dsts = append(dsts, r)
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
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
			})
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
			return a.withImage(cmd, args[0], func(ctx context.Context, s backend, img images.Image) error {
				paths := make([]string, 0, len(labels))
				for k := range labels {
					paths = append(paths, "labels."+k)
				}
				updated, err := s.Images().Update(ctx, images.Image{Name: img.Name, Labels: labels}, paths...)
				if err != nil {
					return err
				}
				return printLabels(a, cmd, updated.Labels)
			})
		},
	}
}
