package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive/dockerarchive"
	"github.com/strata-oci/strata/archive/ocilayout"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/unpack"
)

// ImportRequest imports the images of an archive and unpacks them.
type ImportRequest struct {
	// Path is the archive, an absolute path the job opens itself; empty
	// reads Env.Input.
	Path         string `json:"path,omitempty"`
	BaseName     string `json:"base_name,omitempty"`
	Digests      bool   `json:"digests,omitempty"`
	AllPlatforms bool   `json:"all_platforms,omitempty"`
	NoUnpack     bool   `json:"no_unpack,omitempty"`
	// Snapshotter defaults to the store's.
	Snapshotter string `json:"snapshotter,omitempty"`
}

// ExportRequest writes images to an archive.
type ExportRequest struct {
	// Path is the archive, an absolute path written through a temporary
	// file and renamed when complete; empty writes Env.Output.
	Path string `json:"path,omitempty"`
	// Images are image names, as recorded.
	Images []string `json:"images"`
	// Format is "oci" (the default) or "docker".
	Format       string             `json:"format,omitempty"`
	Platforms    []ocispec.Platform `json:"platforms,omitempty"`
	AllPlatforms bool               `json:"all_platforms,omitempty"`
	SkipMissing  bool               `json:"skip_missing,omitempty"`
}

// exportBufferSize batches the small writes of tar headers.
const exportBufferSize = 1 << 20

func (r *Runner) importArchive(ctx context.Context, req ImportRequest, env Env) (Result, error) {
	s := r.store
	in, name := env.Input, "stdin"
	if req.Path != "" {
		if !filepath.IsAbs(req.Path) {
			return Result{}, fmt.Errorf("import %s: want an absolute path: %w", req.Path, errdefs.ErrInvalidArgument)
		}
		f, err := openRegular(req.Path)
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		in, name = f, req.Path
	}
	if in == nil {
		return Result{}, fmt.Errorf("import: no archive: give a path or a stream: %w", errdefs.ErrInvalidArgument)
	}
	snName := ""
	if !req.NoUnpack {
		var err error
		if snName, err = r.snapshotter(req.Snapshotter); err != nil {
			return Result{}, err
		}
	}
	imgs, err := ocilayout.Import(ctx, in, s, ocilayout.ImportOptions{BaseName: req.BaseName, Digests: req.Digests,
		AllPlatforms: req.AllPlatforms, Logger: env.Logger})
	if err == nil && req.Path == "" {
		// Read what follows the archive in a stream (tar's record
		// padding, under 10 KiB): its sender, a pipe's writer or the
		// daemon's receiver, then never waits on a reader that has
		// stopped. Bounded: a stream that goes on and on is not ours.
		io.CopyN(io.Discard, in, 1<<20)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("import %s interrupted: %w (nothing was recorded)", name, err)
		}
		return Result{}, fmt.Errorf("import %s: %w", name, err)
	}
	if !req.NoUnpack {
		cs := s.Content()
		host := images.Only(images.DefaultPlatform())
		unpacked := map[digest.Digest]bool{}
		for _, img := range imgs {
			desc, _, err := images.Manifest(ctx, cs, img.Target, host)
			if err != nil {
				if errors.Is(err, errdefs.ErrNotFound) {
					// Imported for another platform: nothing to unpack here.
					env.Warn(fmt.Sprintf("image %q not unpacked: %v", img.Name, err))
					continue
				}
				return Result{}, fmt.Errorf("image %q: %w", img.Name, err)
			}
			if unpacked[desc.Digest] {
				continue
			}
			unpacked[desc.Digest] = true
			if _, err := unpack.Manifest(ctx, s, desc, unpack.Options{Snapshotter: snName, Parallelism: r.defaults.UnpackParallelism}); err != nil {
				return Result{}, fmt.Errorf("unpack image %q (%s) into snapshotter %s: %w", img.Name, images.FormatPlatform(*desc.Platform), snName, err)
			}
		}
	}
	res := Result{Images: make([]Image, 0, len(imgs))}
	for _, img := range imgs {
		res.Images = append(res.Images, Image{Name: img.Name, Digest: img.Target.Digest})
	}
	return res, nil
}

func (r *Runner) export(ctx context.Context, req ExportRequest, env Env) error {
	format := req.Format
	if format == "" {
		format = "oci"
	}
	switch {
	case format != "oci" && format != "docker":
		return fmt.Errorf("export format %q: want oci or docker: %w", format, errdefs.ErrInvalidArgument)
	case len(req.Images) == 0:
		return fmt.Errorf("export: no images named: %w", errdefs.ErrInvalidArgument)
	case req.AllPlatforms && len(req.Platforms) > 0:
		return fmt.Errorf("export: platforms and all platforms exclude each other: %w", errdefs.ErrInvalidArgument)
	case format == "docker" && (req.AllPlatforms || len(req.Platforms) > 1):
		return fmt.Errorf("export --format docker holds one platform per image: give one platform, or use --format oci: %w", errdefs.ErrInvalidArgument)
	case format == "docker" && req.SkipMissing:
		return fmt.Errorf("export: skipping missing blobs works with --format oci only: a docker archive needs every layer of its images: %w", errdefs.ErrInvalidArgument)
	case req.Path != "" && !filepath.IsAbs(req.Path):
		return fmt.Errorf("export %s: want an absolute path: %w", req.Path, errdefs.ErrInvalidArgument)
	case req.Path == "" && env.Output == nil:
		return fmt.Errorf("export: no output: give a path or a stream: %w", errdefs.ErrInvalidArgument)
	}
	is := r.store.Images()
	imgs := make([]images.Image, 0, len(req.Images))
	for _, name := range req.Images {
		img, err := is.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("export image %q: %w", name, err)
		}
		imgs = append(imgs, img)
	}
	var targets []ocispec.Descriptor
	for _, img := range imgs {
		targets = append(targets, img.Target)
	}
	// Layers discarded after unpacking come again from their registries.
	cs, err := pull.Refetcher(ctx, r.store.Content(), Registry{}.resolver(env, r.defaults), targets)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	write := func(w io.Writer) error {
		if format == "docker" {
			var m images.PlatformMatcher
			if len(req.Platforms) == 1 {
				m = images.Any(req.Platforms[0])
			}
			return dockerarchive.Export(ctx, w, cs, imgs, m)
		}
		o := ocilayout.ExportOptions{AllPlatforms: req.AllPlatforms, SkipMissing: req.SkipMissing}
		if len(req.Platforms) > 0 {
			o.Platforms = images.Any(req.Platforms...)
		}
		return ocilayout.Export(ctx, w, cs, imgs, o)
	}
	if req.Path == "" {
		bw := bufio.NewWriterSize(env.Output, exportBufferSize)
		if err := write(bw); err != nil {
			return exportFailed(ctx.Err(), "stdout", err)
		}
		return bw.Flush()
	}
	if err := ExportToFile(req.Path, write); err != nil {
		return exportFailed(ctx.Err(), req.Path, err)
	}
	return nil
}

// exportFailed says that an interrupted export wrote nothing usable.
func exportFailed(interrupted error, out string, err error) error {
	if interrupted != nil {
		return fmt.Errorf("export to %s interrupted: %w", out, err)
	}
	return err
}

// openRegular opens path for reading if it is a regular file: a FIFO or a
// device would block the opener where no context reaches it (O_NONBLOCK
// keeps the open itself from waiting for a writer).
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file (%s): %w", path, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	if err == nil {
		// Regular files never block; reads go back to the usual path.
		err = syscall.SetNonblock(int(f.Fd()), false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ExportToFile runs write into a temporary file next to path and renames
// it to path once complete: path is the whole archive or untouched.
func ExportToFile(path string, write func(io.Writer) error) (err error) {
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
