package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
)

// mountDir returns dir absolute and with symlinks resolved, as the mount
// table shows it: the same directory always makes the same snapshot key.
func mountDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %w", dir, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	return abs, nil
}

// mountSnapshots returns the names of the snapshotters that have the
// snapshot key.
func mountSnapshots(ctx context.Context, s backend, key string) ([]string, error) {
	var names []string
	for _, name := range snapshotterNames {
		sn := s.Snapshotter(name)
		if sn == nil {
			continue
		}
		_, err := sn.Stat(ctx, key)
		switch {
		case err == nil:
			names = append(names, name)
		case !errors.Is(err, errdefs.ErrNotFound):
			return nil, err
		}
	}
	return names, nil
}

// isMounted reports whether something is mounted on dir.
func isMounted(dir string) (bool, error) {
	info, err := mount.Lookup(dir)
	if err != nil {
		return false, err
	}
	return info.Mountpoint == dir, nil
}

func imagesMount(a *app) *cobra.Command {
	var (
		rw       bool
		platform string
	)
	sf := &snapshotterFlag{}
	cmd := &cobra.Command{
		Use:   "mount REF DIR [--rw] [--platform P] [--snapshotter S]",
		Short: "Mount an image's root filesystem on DIR, unpacking it first when needed",
		Long: `Mounts the root filesystem of the image REF for the host's platform (or
--platform) on the directory DIR, read-only, or writable with --rw: the
writes go to a snapshot of their own, which outlives the mount until
strata images unmount --rm DIR removes it. The image is unpacked into the
snapshotter first if it is not yet. Prints DIR.

The snapshot is keyed "strata-mount:DIR" and labelled containerd.io/gc.root,
so garbage collection keeps it and the image's layers while it exists.`,
		Example: `  strata images mount docker.io/library/alpine:3.20 /mnt/alpine
  strata images mount --rw --platform linux/arm64 127.0.0.1:5000/app:1 /mnt/app
  strata images unmount --rm /mnt/app`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := images.DefaultPlatform()
			if platform != "" {
				var err error
				if p, err = images.ParsePlatform(platform); err != nil {
					return usageError{fmt.Errorf("--platform: %w", err)}
				}
			}
			dir, err := mountDir(args[1])
			if err != nil {
				return err
			}
			if fi, err := os.Stat(dir); err != nil {
				return fmt.Errorf("mount point: %w", err)
			} else if !fi.IsDir() {
				return fmt.Errorf("mount point %s: not a directory: %w", dir, errdefs.ErrInvalidArgument)
			}
			return a.withSnapshotter(cmd, sf, func(ctx context.Context, s backend, sn snapshots.Snapshotter, snName string) error {
				key := mountKeyPrefix + dir
				if names, err := mountSnapshots(ctx, s, key); err != nil {
					return err
				} else if len(names) > 0 {
					if mounted, _ := isMounted(dir); mounted {
						return fmt.Errorf("%s is already a strata mount (snapshot %q in snapshotter %s); unmount it first (strata images unmount %s): %w",
							dir, key, names[0], dir, errdefs.ErrAlreadyExists)
					}
					return fmt.Errorf("%s has the snapshot %q of an earlier mount (in snapshotter %s), not mounted now; remove it first (strata images unmount --rm %s): %w",
						dir, key, names[0], dir, errdefs.ErrAlreadyExists)
				}
				img, err := resolveImage(ctx, s.Images(), a.namespace, args[0])
				if err != nil {
					return err
				}
				cs := s.Content()
				desc, manifest, err := images.Manifest(ctx, cs, img.Target, images.Only(p))
				if err != nil {
					return fmt.Errorf("image %q: %w", img.Name, err)
				}
				diffIDs, err := images.RootFS(ctx, cs, manifest)
				if err != nil {
					return fmt.Errorf("image %q: %w", img.Name, err)
				}
				if len(diffIDs) == 0 {
					return fmt.Errorf("image %q (%s) has no layers to mount: %w", img.Name, images.FormatPlatform(*desc.Platform), errdefs.ErrFailedPrecondition)
				}
				chain := images.ChainIDs(diffIDs)
				top := chain[len(chain)-1]

				// A lease holds what is unpacked until the snapshot below,
				// with its gc.root label, holds it for good.
				l, err := s.Leases().Create(ctx, leases.WithExpiration(time.Hour),
					leases.WithLabels(map[string]string{labels.CreatedBy: "images-mount"}))
				if err != nil {
					return err
				}
				defer func() {
					if err := s.Leases().Delete(context.WithoutCancel(ctx), l); err != nil {
						// It expires within the hour anyway.
						a.logger.Warn("delete the lease of images mount", "lease", l.ID, "error", err)
					}
				}()
				ctx = leases.WithLease(ctx, l.ID)

				if _, err := sn.Stat(ctx, top.String()); errors.Is(err, errdefs.ErrNotFound) {
					// Unpack also labels the config with the top snapshot, the
					// edge that keeps the layers once the mount is gone.
					res, err := s.Run(ctx, jobs.Request{Unpack: &jobs.UnpackRequest{Manifest: desc, Snapshotter: snName}}, jobs.Env{Logger: a.logger})
					if err != nil {
						return fmt.Errorf("unpack image %q (%s) into snapshotter %s: %w", img.Name, images.FormatPlatform(*desc.Platform), snName, err)
					}
					if got := res.ChainID; got != top {
						return fmt.Errorf("unpack image %q: top chain ID %s, want %s: %w", img.Name, got, top, errdefs.ErrDataLoss)
					}
				} else if err != nil {
					return err
				}

				opt := snapshots.WithLabels(map[string]string{
					labels.GCRoot:        time.Now().UTC().Format(time.RFC3339),
					labels.MountImage:    img.Name,
					labels.MountPlatform: images.FormatPlatform(*desc.Platform),
				})
				var mounts []mount.Mount
				if rw {
					mounts, err = sn.Prepare(ctx, key, top.String(), opt)
				} else {
					mounts, err = sn.View(ctx, key, top.String(), opt)
				}
				if err != nil {
					return err
				}
				if err := mount.All(mounts, dir); err != nil {
					if rerr := sn.Remove(context.WithoutCancel(ctx), key); rerr != nil {
						return fmt.Errorf("%w (and remove snapshot %q: %w)", err, key, rerr)
					}
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), dir)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&rw, "rw", false, "mount writable; writes go to the mount's own snapshot")
	f.StringVar(&platform, "platform", "", "platform to mount, e.g. linux/arm64 (default: the host's)")
	sf.register(cmd)
	return cmd
}

func imagesUnmount(a *app) *cobra.Command {
	var rm bool
	cmd := &cobra.Command{
		Use:     "unmount DIR [--rm]",
		Aliases: []string{"umount"},
		Short:   "Unmount an image mounted by strata images mount; --rm also removes its snapshot",
		Long: `Unmounts DIR, which strata images mount mounted, and with --rm removes the
snapshot that held it (and any writes made through a --rw mount). Without
--rm the snapshot stays; strata images unmount --rm DIR removes it later.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := mountDir(args[0])
			if err != nil {
				return err
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				key := mountKeyPrefix + dir
				names, err := mountSnapshots(ctx, s, key)
				if err != nil {
					return err
				}
				if len(names) == 0 {
					// Not ours: leave whatever is mounted there alone.
					return fmt.Errorf("%s is not a strata mount: no snapshot %q in namespace %q: %w", dir, key, a.namespace, errdefs.ErrNotFound)
				}
				if err := mount.UnmountAll(dir, 0); err != nil {
					if errors.Is(err, unix.EBUSY) {
						return fmt.Errorf("%w; a process still uses it (fuser -m %s)", err, dir)
					}
					return err
				}
				if rm {
					for _, name := range names {
						if err := s.Snapshotter(name).Remove(ctx, key); err != nil {
							return err
						}
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), dir)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rm, "rm", false, "also remove the mount's snapshot and what was written to it")
	return cmd
}
