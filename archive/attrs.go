package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func tarMode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o777
	if hdr.Mode&0o4000 != 0 {
		m |= unix.S_ISUID
	}
	if hdr.Mode&0o2000 != 0 {
		m |= unix.S_ISGID
	}
	if hdr.Mode&0o1000 != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// attributes sets owner, mode, xattrs and times of base in directory pfd
// (of the root itself when base is ""). Directory times wait until the end:
// creating children would change them.
func (a *applier) attributes(hdr *tar.Header, pfd int, base, name string) error {
	isLink := hdr.Typeflag == tar.TypeSymlink
	// The root itself is named "." from its own descriptor; anything else
	// by its one component in its parent, never followed.
	target, flags := base, unix.AT_SYMLINK_NOFOLLOW
	if base == "" {
		target, flags = ".", 0
	}
	if !a.opts.Unprivileged {
		if err := unix.Fchownat(pfd, target, hdr.Uid, hdr.Gid, flags); err != nil {
			return fmt.Errorf("archive: chown %q: %w", hdr.Name, err)
		}
	}
	if !isLink && hdr.Typeflag != tar.TypeDir {
		// The node was just made by us and is not a symlink, so following
		// is harmless; fchmodat cannot refuse to follow on Linux.
		if err := unix.Fchmodat(pfd, target, tarMode(hdr), 0); err != nil {
			return fmt.Errorf("archive: chmod %q: %w", hdr.Name, err)
		}
	}
	// Extended attributes through the parent's descriptor: the magic link
	// names the directory we hold, base is one component, and lsetxattr
	// does not follow it.
	p := fmt.Sprintf("/proc/self/fd/%d", pfd)
	if base != "" {
		p += "/" + base
	}
	set := func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }
	if base == "" {
		set = func(k string, v []byte) error { return unix.Setxattr(p, k, v, 0) }
	}
	if err := a.xattrs(hdr, set); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTimes{name: name, atime: accessTime(hdr), mtime: hdr.ModTime, mode: tarMode(hdr)})
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, target, ts, flags); err != nil {
		return fmt.Errorf("archive: set times of %q: %w", hdr.Name, err)
	}
	return nil
}

// xattrs applies the entry's extended attributes (PAX SCHILY.xattr.*).
// overlayfs's own attributes are never taken from a layer: they would let it
// redirect lookups or forge whiteouts.
func (a *applier) xattrs(hdr *tar.Header, set func(string, []byte) error) error {
	n := 0
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		n++
		if n > a.opts.Limits.MaxXattrs {
			return fmt.Errorf("archive: %q: more than %d extended attributes: %w", hdr.Name, a.opts.Limits.MaxXattrs, errdefs.ErrInvalidArgument)
		}
		if len(v) > a.opts.Limits.MaxXattrSize {
			return fmt.Errorf("archive: %q: extended attribute %q of %d bytes exceeds %d: %w", hdr.Name, name, len(v), a.opts.Limits.MaxXattrSize, errdefs.ErrInvalidArgument)
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		if err := set(name, []byte(v)); err != nil {
			if a.opts.Unprivileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue // trusted.* and security.* need privilege
			}
			return fmt.Errorf("archive: %q: set extended attribute %q: %w", hdr.Name, name, err)
		}
	}
	return nil
}
