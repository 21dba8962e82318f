package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/reference"
)

func imagesImport(a *app) *cobra.Command {
	var (
		noUnpack, digests, allPlatforms bool
		baseName                        string
	)
	sf := &snapshotterFlag{}
	cmd := &cobra.Command{
		Use:   "import IN.tar|- [--no-unpack] [--base-name NAME] [--digests] [--all-platforms] [--snapshotter S]",
		Short: "Import images from an OCI image layout tar or a docker save tar, and unpack them",
		Long: `Imports the images of an archive (a file, or - for stdin; gzip or zstd
compressed or not): an OCI image layout tar (ctr images export, skopeo
oci-archive, buildx --output type=oci) or a docker save tar (the legacy
layout, or Docker 25's OCI layout with manifest.json; podman save, skopeo
docker-archive). The archive is read once, as it streams; every blob is
verified. Then the host platform of each image is unpacked, unless
--no-unpack. Prints the names of the images.

Images are named by the archive: io.containerd.image.name, or the
org.opencontainers.image.ref.name annotation (a tag alone there is put
after --base-name), or docker's RepoTags. An image without a name becomes
BASE@<digest>, and with --digests every image gets that name too. BASE is
--base-name, by default import-<yyyy-mm-dd>, as with ctr.

The host platform's manifest, config and layers must be in the archive (or
the store) for each image; with --all-platforms, every platform's. An
incomplete archive records nothing.`,
		Example: `  strata images import alpine.tar
  docker save alpine:3.20 | strata images import -
  strata images import --base-name registry.example.com/app app-oci.tar`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if baseName != "" {
				if _, err := reference.Parse(baseName + "@" + digest.FromString("").String()); err != nil {
					return usagef("--base-name %q: want a repository name without tag or digest (%v)", baseName, err)
				}
			}
			req := &jobs.ImportRequest{BaseName: baseName, Digests: digests, AllPlatforms: allPlatforms, NoUnpack: noUnpack}
			env := jobs.Env{Logger: a.logger, Warn: func(msg string) { fmt.Fprintf(cmd.ErrOrStderr(), "strata: %s\n", msg) }}
			if !noUnpack {
				if err := sf.check(); err != nil {
					return err
				}
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				if !noUnpack {
					_, name, err := sf.snapshotter(s)
					if err != nil {
						return err
					}
					req.Snapshotter = name
				}
				switch in := args[0]; {
				case in == "-":
					env.Input = cmd.InOrStdin()
				default:
					abs, err := filepath.Abs(in)
					if err != nil {
						return err
					}
					st, err := os.Stat(abs)
					if err != nil {
						return err
					}
					if st.Mode().IsRegular() && s.OpensPaths() {
						// The job opens the file itself: in the daemon, it
						// then goes on if this command is killed.
						req.Path = abs
						break
					}
					// A pipe (<(...), /dev/stdin), or a file the daemon
					// must not open for us: stream it.
					f, err := os.Open(abs)
					if err != nil {
						return err
					}
					defer f.Close()
					env.Input = f
				}
				res, err := s.Run(ctx, jobs.Request{Import: req}, env)
				if err != nil {
					return err
				}
				imgs := res.Images
				for _, img := range imgs {
					fmt.Fprintln(cmd.OutOrStdout(), img.Name)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noUnpack, "no-unpack", false, "import only; do not unpack")
	f.StringVar(&baseName, "base-name", "", "repository name for images the archive names by tag only or not at all (default import-<yyyy-mm-dd>)")
	f.BoolVar(&digests, "digests", false, "also name every image BASE@<digest>")
	f.BoolVar(&allPlatforms, "all-platforms", false, "require every platform of each image in the archive, not only the host's")
	sf.register(cmd)
	return cmd
}
