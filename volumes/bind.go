package volumes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	name, dst, mode, nocopy, err := parseVolumeSpec(spec)
	if err != nil {
		return specs.Mount{}, err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return specs.Mount{}, err
	}
	defer unlock()
	var v Volume
	if name == "" {
		if v, err = s.create(CreateRequest{Anonymous: true}); err != nil {
			return specs.Mount{}, err
		}
	} else if v, err = s.get(name); errors.Is(err, errdefs.ErrNotFound) && opts.Create {
		if v, err = s.create(CreateRequest{Name: name}); err != nil {
			return specs.Mount{}, err
		}
	} else if err != nil {
		return specs.Mount{}, err
	}
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
