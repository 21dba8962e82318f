package volumes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/strata-oci/strata/mount"
)

// IsVolume says whether a -v argument names a volume (NAME:/dst[:opts], or
// /dst alone for an anonymous one) rather than a host path (/src:/dst),
// which oci.ParseBind takes.
func IsVolume(spec string) bool {
	src, _, hasDst := strings.Cut(spec, ":")
	if !hasDst {
		return strings.HasPrefix(spec, "/")
	}
	return !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, ".")
}

// BindOptions says what Bind may do.
type BindOptions struct {
	// Create makes a named volume that does not exist, as docker's -v
	// does; without it a missing volume is ErrNotFound (--mount
	// type=volume with a name checked first, or a caller that wants the
	// strictness).
	Create bool
}

// Bind turns a -v argument naming a volume (NAME:/dst[:ro|rw][,nocopy],
// or /dst for a new anonymous volume) into the bind mount that goes into
// oci.Options.Mounts. rootfs is where the container's root filesystem is
// mounted: a volume no container has mounted yet is filled from what it
// has at dst (unless nocopy); "" skips that.
//
// A bad argument or volume name is ErrInvalidArgument, a missing volume
// without opts.Create ErrNotFound; a failed copy leaves the volume to be
// filled by the next container that mounts it.
func (s *Store) Bind(ctx context.Context, spec, rootfs string, opts BindOptions) (specs.Mount, error) {
	m, _, err := s.bind(ctx, spec, rootfs, opts)
	return m, err
}

// bind is Bind, also naming the volume it created ("" when none).
func (s *Store) bind(ctx context.Context, spec, rootfs string, opts BindOptions) (_ specs.Mount, created string, _ error) {
	name, dst, mode, nocopy, err := parseVolumeSpec(spec)
	if err != nil {
		return specs.Mount{}, "", err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return specs.Mount{}, "", err
	}
	defer unlock()
	var v Volume
	if name == "" {
		if v, err = s.create(CreateRequest{Anonymous: true}); err != nil {
			return specs.Mount{}, "", err
		}
		created = v.Name
	} else if v, err = s.get(name); errors.Is(err, errdefs.ErrNotFound) && opts.Create {
		if v, err = s.create(CreateRequest{Name: name}); err != nil {
			return specs.Mount{}, "", err
		}
		created = v.Name
	} else if err != nil {
		return specs.Mount{}, "", err
	}
	m, err := s.fill(ctx, v, dst, mode, rootfs, nocopy)
	if err != nil && created != "" {
		if rerr := s.remove(created); rerr != nil {
			err = fmt.Errorf("%w (and removing it again: %w)", err, rerr)
		}
		created = ""
	}
	return m, created, err
}

// fill copies up into a volume not mounted before, and returns its mount.
func (s *Store) fill(ctx context.Context, v Volume, dst, mode, rootfs string, nocopy bool) (specs.Mount, error) {
	if v.CopyUp && rootfs != "" {
		if !nocopy {
			if err := copyUp(ctx, rootfs, dst, v.Mountpoint); err != nil {
				// Leave it empty and still to fill, as it was.
				if rerr := s.empty(v); rerr != nil {
					return specs.Mount{}, fmt.Errorf("volume %q: fill from the image at %s: %w (and emptying it again: %w)", v.Name, dst, err, rerr)
				}
				return specs.Mount{}, fmt.Errorf("volume %q: fill from the image at %s: %w", v.Name, dst, err)
			}
		}
		v.CopyUp = false
		if err := s.write(v); err != nil {
			return specs.Mount{}, err
		}
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: v.Mountpoint,
		Options: []string{"rbind", mode, "rprivate"}}, nil
}

// BindAll turns the -v arguments naming volumes into bind mounts, as Bind
// does, with the container's root filesystem mounted (read-only, in a
// temporary directory) only when a volume is to be filled from it. Every
// argument is checked before anything is made, and a failure removes the
// volumes this call made: nothing is left half done.
func (s *Store) BindAll(ctx context.Context, args []string, rootfs []mount.Mount, opts BindOptions) ([]specs.Mount, error) {
	need := false
	for _, a := range args {
		name, _, _, nocopy, err := parseVolumeSpec(a)
		if err != nil {
			return nil, err
		}
		if name == "" {
			need = need || !nocopy
			continue
		}
		v, err := s.Get(ctx, name)
		switch {
		case errors.Is(err, errdefs.ErrNotFound) && opts.Create:
			need = need || !nocopy
		case err != nil:
			return nil, err
		default:
			need = need || v.CopyUp && !nocopy
		}
	}
	var out []specs.Mount
	var made []string
	bindAll := func(root string) error {
		for _, a := range args {
			m, created, err := s.bind(ctx, a, root, opts)
			if err != nil {
				return err
			}
			if created != "" {
				made = append(made, created)
			}
			out = append(out, m)
		}
		return nil
	}
	var err error
	if need && len(rootfs) > 0 {
		err = mount.WithTempMount(ctx, readOnly(rootfs), bindAll)
	} else {
		err = bindAll("")
	}
	if err != nil {
		for _, name := range made {
			if rerr := s.Remove(context.WithoutCancel(ctx), name); rerr != nil {
				err = fmt.Errorf("%w (and removing volume %s again: %w)", err, name, rerr)
			}
		}
		return nil, err
	}
	return out, nil
}

// readOnly returns mounts with "ro" added: the copy only reads the image.
func readOnly(ms []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(ms))
	for i, m := range ms {
		m.Options = append(slices.Clone(m.Options), "ro")
		out[i] = m
	}
	return out
}

// empty removes what a failed copy left in a volume's _data.
func (s *Store) empty(v Volume) error {
	if err := removeContents(v.Mountpoint); err != nil {
		return fmt.Errorf("volume %q: %w", v.Name, err)
	}
	return nil
}

func parseVolumeSpec(spec string) (name, dst, mode string, nocopy bool, err error) {
	bad := func(why string) error {
		return fmt.Errorf("volume %q: %s: %w", spec, why, errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(spec, ":")
	var optStr string
	switch {
	case len(parts) == 1:
		dst = parts[0]
	case len(parts) == 2 && strings.HasPrefix(parts[0], "/"):
		dst, optStr = parts[0], parts[1] // /dst:ro, anonymous
	case len(parts) == 2:
		name, dst = parts[0], parts[1]
	case len(parts) == 3:
		name, dst, optStr = parts[0], parts[1], parts[2]
	default:
		return "", "", "", false, bad("want NAME:/DST[:OPTIONS] or /DST")
	}
	if name != "" {
		if err := ValidName(name); err != nil {
			return "", "", "", false, fmt.Errorf("volume %q: %w", spec, err)
		}
	}
	if !path.IsAbs(dst) {
		return "", "", "", false, bad(fmt.Sprintf("destination %q is not an absolute path", dst))
	}
	dst = path.Clean(dst)
	if dst == "/" {
		return "", "", "", false, bad("cannot mount a volume on /")
	}
	mode = "rw"
	seenMode := false
	if optStr != "" {
		for _, o := range strings.Split(optStr, ",") {
			switch o {
			case "ro", "rw":
				if seenMode {
					return "", "", "", false, bad("two modes")
				}
				mode, seenMode = o, true
			case "nocopy":
				nocopy = true
			case "z", "Z":
				// SELinux relabelling: nothing to do without SELinux.
			default:
				return "", "", "", false, bad(fmt.Sprintf("unknown option %q (want ro, rw, nocopy)", o))
			}
		}
	}
	return name, dst, mode, nocopy, nil
}

// Names returns the volumes of this store a container's mounts bind, by
// their source under the store: what an InUseFunc finds in the specs of
// the containers.
func (s *Store) Names(mounts []specs.Mount) []string {
	var out []string
	for _, m := range mounts {
		rel, err := filepath.Rel(s.root, filepath.Clean(m.Source))
		if err != nil || !filepath.IsAbs(m.Source) {
			continue
		}
		name, rest, _ := strings.Cut(rel, string(filepath.Separator))
		if rest == "_data" && ValidName(name) == nil {
			out = append(out, name)
		}
	}
	return out
}
