package archive

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// visibleInLayers reports whether rel exists in the overlay of layers
// (directories, newest first), the way overlayfs looks it up.
func visibleInLayers(layers []string, rel, xattrPrefix string) bool {
	return showingLayer(layers, rel, xattrPrefix) >= 0
}

// showingLayer returns the index of the layer (of directories, newest
// first) whose entry the overlay of layers shows at rel, or -1: a whiteout
// or a non-directory hides what is below it, an opaque directory hides the
// lower directories of the same name. Components are checked one at a
// time, so no symlink is ever followed.
func showingLayer(layers []string, rel, xattrPrefix string) int {
	parts := strings.Split(rel, "/")
	visible := make([]int, len(layers))
	for i := range visible {
		visible[i] = i
	}
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		last := i == len(parts)-1
		var next []int
		for _, li := range visible {
			l := layers[li]
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(l, p), &st); err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				break // a whiteout
			}
			if last {
				return li
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				break
			}
			next = append(next, li)
			if v, err := getxattr(filepath.Join(l, p), xattrPrefix+"opaque"); err == nil && string(v) == "y" {
				break
			}
		}
		if len(next) == 0 {
			return -1
		}
		visible = next
	}
	return -1
}

// PruneWhiteouts removes from the layer directory dir those of its whiteout
// devices (as listed by ApplyResult.Whiteouts) that hide nothing in parents
// (newest first): what Apply with ApplyOptions.Parents does at once, for
// layers applied in parallel before their parents were complete.
func PruneWhiteouts(dir string, whiteouts, parents []string, xattrPrefix string) error {
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	for _, w := range whiteouts {
		if visibleInLayers(parents, w, xattrPrefix) {
			continue
		}
		d, base := path.Split(w)
		pd, err := rt.dir(strings.TrimSuffix(d, "/"), false)
		if err != nil {
			return fmt.Errorf("archive: prune whiteout %q: %w", w, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pd.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			err = unix.Unlinkat(pd.fd, base, 0)
			if err != nil {
				rt.release(pd)
				return fmt.Errorf("archive: prune whiteout %q: %w", w, err)
			}
		} // else not (or no longer) a whiteout
		rt.release(pd)
	}
	return nil
}

// InheritDirs gives the directories of dir that Apply made for missing
// parents (ApplyResult.ImplicitDirs) the mode and owner of the directory
// the parents (newest first) show at that path, as they would have had
// the layer been applied on top of them: in an overlay upper directory
// they would otherwise hide the lower directory's attributes.
func InheritDirs(dir string, implicit, parents []string, xattrPrefix string) error {
	if len(implicit) == 0 || len(parents) == 0 {
		return nil
	}
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	for _, rel := range implicit {
		if !visibleInLayers(parents, rel, xattrPrefix) {
			continue
		}
		var from unix.Stat_t
		found := false
		for _, l := range parents {
			if err := unix.Lstat(filepath.Join(l, rel), &from); err != nil {
				continue
			}
			found = from.Mode&unix.S_IFMT == unix.S_IFDIR
			break
		}
		if !found {
			continue
		}
		d, err := rt.dir(rel, false)
		if err != nil {
			continue // replaced by a later entry of the layer
		}
		err = unix.Fchownat(d.fd, "", int(from.Uid), int(from.Gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			err = fmt.Errorf("archive: inherit owner of %q: %w", rel, err)
		} else if err = unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", d.fd), from.Mode&0o7777); err != nil {
			err = fmt.Errorf("archive: inherit mode of %q: %w", rel, err)
		}
		rt.release(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// LinkLowers makes the hard links that Apply deferred
// (ApplyResult.LowerLinks) in the layer directory dir, now that its
// parents (directories, newest first) exist: each target is copied up
// from the parents into dir, with its attributes, and linked, as Apply
// does when it knows the parents. A target the layer replaced or hid
// after the link was made is copied to the link's name alone, as the
// link kept the file natively. Directories made on the way get the
// parents' attributes (see InheritDirs). It returns errdefs.ErrNotFound
// for a target the parents do not show either.
func LinkLowers(dir string, links []HardLink, parents []string, xattrPrefix string) error {
	if len(links) == 0 {
		return nil
	}
	if xattrPrefix == "" {
		xattrPrefix = "trusted.overlay."
	}
	rt, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer rt.close()
	a := &applier{dir: dir, root: rt, copied: map[string]struct{}{},
		opts: ApplyOptions{Whiteouts: WhiteoutOverlay, Parents: parents, OverlayXattrPrefix: xattrPrefix, Unprivileged: os.Geteuid() != 0}}
	for _, l := range links {
		if err := a.linkLower(l); err != nil {
			return fmt.Errorf("archive: hard link %q to %q: %w", l.Name, l.Target, err)
		}
	}
	var made []string
	for d := range rt.made {
		made = append(made, d)
	}
	return InheritDirs(dir, made, parents, xattrPrefix)
}

func (a *applier) linkLower(l HardLink) error {
	ldir, lbase := path.Split(l.Name)
	pd, err := a.root.dir(strings.TrimSuffix(ldir, "/"), true)
	if err != nil {
		return err
	}
	defer a.root.release(pd)
	if _, ok := a.copied[l.Target]; !ok {
		// What the layer has at the target now came after the link
		// (else Apply would have made it): a later entry, or a
		// whiteout. The link keeps the parents' file, alone.
		if hidden, present := upperState(a.dir, l.Target, a.opts.OverlayXattrPrefix); hidden || present {
			return a.copyUpTo(l.Target, l.Name)
		}
		if err := a.copyUp(l.Target); err != nil {
			return err
		}
	}
	if err := a.link(l.Target, pd.fd, lbase); err != nil {
		return err
	}
	a.copied[l.Name] = struct{}{} // a later link to it links it
	return nil
}

// upperState looks at rel in the layer directory dir alone: hidden says
// that the layer hides what its parents have there (a whiteout at rel, or
// a whiteout, non-directory or opaque directory on the way), present
// that dir has an entry at rel. No symlink is followed.
func upperState(dir, rel, xattrPrefix string) (hidden, present bool) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := filepath.Join(dir, filepath.Join(parts[:i+1]...))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return false, false
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			return true, i == len(parts)-1
		}
		if i == len(parts)-1 {
			return false, true
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return true, false
		}
		if v, err := getxattr(p, xattrPrefix+"opaque"); err == nil && string(v) == "y" {
			return true, false
		}
	}
	return false, false
}
