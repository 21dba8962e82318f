package mount

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Info is one line of /proc/self/mountinfo.
type Info = mountinfo.Info

func lookupExact(target string) ([]*Info, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(abs))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return infos, nil
}

// Lookup returns the mount that contains path: the mount whose mount point
// is the longest prefix of it.
func Lookup(path string) (Info, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(abs))
	if err != nil {
		return Info{}, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(infos) == 0 {
		return Info{}, fmt.Errorf("no mount contains %s", abs)
	}
	best := infos[0]
	for _, i := range infos[1:] {
		// Later lines are mounted later, so on top of earlier ones.
		if len(i.Mountpoint) >= len(best.Mountpoint) {
			best = i
		}
	}
	return *best, nil
}

// Under returns the mount points at or below root, deepest (and most
// recently mounted) first, which is the order to unmount them in.
func Under(root string) ([]string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	infos, err := mountinfo.GetMounts(func(i *Info) (skip, stop bool) {
		return !(i.Mountpoint == abs || strings.HasPrefix(i.Mountpoint, abs+"/")), false
	})
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	// Keep mountinfo order (mount order) and reverse it, then put deeper
	// paths first among the rest.
	out := make([]string, len(infos))
	for i, info := range infos {
		out[len(infos)-1-i] = info.Mountpoint
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out, nil
}

// UnmountUnder detaches every mount strictly below root: the stale mounts a
// crashed process left, found at start before anything else uses root.
// root itself is left alone: it is often a volume mounted there on purpose.
func UnmountUnder(root string) error {
	points, err := Under(root)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	for _, p := range points {
		if p == abs {
			continue
		}
		if err := Unmount(p, unix.MNT_DETACH); err != nil {
			return err
		}
	}
	return nil
}
