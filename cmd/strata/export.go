package main

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
)

func imagesExport(a *app) *cobra.Command {
	var (
		format       string
		platforms    []string
		allPlatforms bool
		skipMissing  bool
	)
	cmd := &cobra.Command{
		Use:   "export OUT.tar|- REF... [--format oci|docker] [--platform P]... [--all-platforms]",
		Short: "Write images to an OCI image layout tar or a docker save tar",
		Long: `Writes the images REF... to the archive OUT.tar, or to stdout with "-".

--format oci (the default) writes an OCI image layout, as ctr images export
does: index.json names each image (org.opencontainers.image.ref.name is its
tag, io.containerd.image.name its full name); the blobs are the image's
index, every manifest and config in the store, and the layers of the host's
platform, of the platforms given with --platform, or of all of them with
--all-platforms. skopeo copy oci-archive:OUT.tar:TAG, ctr images import and
strata images import read it.

--format docker writes what docker save writes (manifest.json, repositories,
blobs/sha256/): one platform per image, the host's or the one given with
--platform. docker load, podman load and skopeo's docker-archive: read it.

Every blob needed must be in the store: an image pulled for one platform
cannot be exported with --all-platforms (pull it with --all-platforms
first, or export what is there with --skip-missing). The archive is written
to a temporary file next to OUT.tar and renamed when complete, so a failed
export leaves no OUT.tar behind.`,
		Example: `  strata images export app.tar 127.0.0.1:5000/app:1
  strata images export --all-platforms - alpine:3.20 | gzip > alpine.tar.gz
  strata images export --format docker --platform linux/arm64 app.tar app:1 base:2`,
		Args: minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, refs := args[0], args[1:]
			ps, err := parsePlatforms(platforms)
			if err != nil {
				return err
			}
			switch {
			case format != "oci" && format != "docker":
				return usagef("--format %q: want oci or docker", format)
			case allPlatforms && len(ps) > 0:
				return usagef("--platform and --all-platforms exclude each other")
			case format == "docker" && allPlatforms:
				return usagef("--format docker holds one platform per image: use --platform, or --format oci for --all-platforms")
			case format == "docker" && len(ps) > 1:
				return usagef("--format docker holds one platform per image: give one --platform, or use --format oci")
			case format == "docker" && skipMissing:
				return usagef("--skip-missing works with --format oci only: a docker archive needs every layer of its images")
			}
			if out == "-" {
				if f, ok := cmd.OutOrStdout().(*os.File); ok {
					if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
						return usagef("refusing to write an archive to a terminal: redirect stdout or name a file")
					}
				}
			}

			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				var imgs []images.Image
				seen := map[string]bool{}
				for _, ref := range refs {
					img, err := resolveImage(ctx, s.Images(), a.namespace, ref)
					if err != nil {
						return err
					}
					if !seen[img.Name] {
						seen[img.Name] = true
						imgs = append(imgs, img)
					}
				}
				req := &jobs.ExportRequest{Format: format, Platforms: ps, AllPlatforms: allPlatforms, SkipMissing: skipMissing}
				for _, img := range imgs {
					req.Images = append(req.Images, img.Name)
				}
				env := jobs.Env{Logger: a.logger}
				switch {
				case out == "-":
					env.Output = cmd.OutOrStdout()
				case s.OpensPaths():
					// The job writes the file itself: in the daemon, it then
					// goes on if this command is killed.
					abs, err := filepath.Abs(out)
					if err != nil {
						return err
					}
					req.Path = abs
				default:
					// The daemon streams the archive; the file is this
					// user's, written as the job writes a path.
					return jobs.ExportToFile(out, func(w io.Writer) error {
						env.Output = w
						_, err := s.Run(ctx, jobs.Request{Export: req}, env)
						return err
					})
				}
				_, err := s.Run(ctx, jobs.Request{Export: req}, env)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "oci", "archive format: oci (OCI image layout) or docker (docker save)")
	f.StringArrayVar(&platforms, "platform", nil, "export the layers of this platform (repeatable; default: the host's)")
	f.BoolVar(&allPlatforms, "all-platforms", false, "export the layers of every platform (--format oci)")
	f.BoolVar(&skipMissing, "skip-missing", false, "leave out the blobs that are not in the store instead of failing (--format oci)")
	return cmd
}
