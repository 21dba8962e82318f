package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/images"
)

func init() { imageVerbs = append(imageVerbs, imagesExport) }

// exportBufferSize batches the small writes of tar headers.
const exportBufferSize = 1 << 20

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

			ctx := a.ctx(cmd)
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			var imgs []images.Image
			seen := map[string]bool{}
			for _, ref := range refs {
				img, err := resolveImage(ctx, s.DB.Images(), a.namespace, ref)
				if err != nil {
					return err
				}
				if !seen[img.Name] {
					seen[img.Name] = true
					imgs = append(imgs, img)
				}
			}
			cs := s.DB.ContentStore()
			write := func(w io.Writer) error {
				if format == "docker" {
					var m images.PlatformMatcher
					if len(ps) == 1 {
						m = images.Any(ps[0])
					}
					return dockerarchive.Export(ctx, w, cs, imgs, m)
				}
				o := ocilayout.ExportOptions{AllPlatforms: allPlatforms, SkipMissing: skipMissing}
				if len(ps) > 0 {
					o.Platforms = images.Any(ps...)
				}
				return ocilayout.Export(ctx, w, cs, imgs, o)
			}
			if out == "-" {
				bw := bufio.NewWriterSize(cmd.OutOrStdout(), exportBufferSize)
				if err := write(bw); err != nil {
					return exportFailed(ctx.Err(), "stdout", err)
				}
				return bw.Flush()
			}
			if err := exportToFile(out, write); err != nil {
				return exportFailed(ctx.Err(), out, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "oci", "archive format: oci (OCI image layout) or docker (docker save)")
	f.StringArrayVar(&platforms, "platform", nil, "export the layers of this platform (repeatable; default: the host's)")
	f.BoolVar(&allPlatforms, "all-platforms", false, "export the layers of every platform (--format oci)")
	f.BoolVar(&skipMissing, "skip-missing", false, "leave out the blobs that are not in the store instead of failing (--format oci)")
	return cmd
}

// exportFailed says that an interrupted export wrote nothing usable.
func exportFailed(interrupted error, out string, err error) error {
	if interrupted != nil {
		return fmt.Errorf("export to %s interrupted: %w", out, err)
	}
	return err
}

// exportToFile runs write into a temporary file next to path and renames
// it to path once complete: path is the whole archive or untouched.
func exportToFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, exportBufferSize)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; an archive is as readable as a file
	// os.Create makes under the usual umask.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}
