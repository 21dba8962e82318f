package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// copyUp copies target from the parent layer that shows it into the
// layer's directory, with its content, mode, owner, xattrs and times, the
// way overlayfs copies a lower file up before linking it: the mounted
// stack then shows what a native apply gives, a target that the link
// shares. It returns errdefs.ErrNotFound when neither the layer nor its
// parents show target (hidden by a whiteout or an opaque directory, or
// reached only through a symlink), errdefs.ErrInvalidArgument when it is a
// directory.
func (a *applier) copyUp(target string) error {
	return a.copyUpTo(target, target)
}

// copyUpTo copies target as copyUp does, to dest: target itself, found
// through the layer and its parents, or another name (see LinkLowers),
// found through the parents alone.
func (a *applier) copyUpTo(target, dest string) error {
	layers := append([]string{a.dir}, a.opts.Parents...)
	if dest != target {
		layers = layers[1:]
	}
	i := showingLayer(layers, target, a.opts.OverlayXattrPrefix)
	if i < 0 || dest == target && i == 0 {
		// Not found, or found in this layer: the link failed for
		// another reason than a missing target.
		return fmt.Errorf("copy up %q: not in the layer or its parents: %w", target, errdefs.ErrNotFound)
	}
	tdir, tbase := path.Split(target)
	tdir = strings.TrimSuffix(tdir, "/")
	ddir, dbase := path.Split(dest)
	ddir = strings.TrimSuffix(ddir, "/")
	lfd, err := unix.Open(layers[i], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy up %q: open parent layer %s: %w", target, layers[i], err)
	}
	defer unix.Close(lfd)
	// showingLayer saw every component as a directory; refuse symlinks
	// all the same.
	rel := tdir
	if rel == "" {
		rel = "."
	}
	spd, err := unix.Openat2(lfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	defer unix.Close(spd)
	var st unix.Stat_t
	if err := unix.Fstatat(spd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	pd, err := a.root.dir(ddir, true)
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	defer a.root.release(pd)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = copyFileAt(spd, tbase, pd.fd, dbase)
	case unix.S_IFLNK:
		var l string
		if l, err = readlinkAt(spd, tbase); err == nil {
			err = unix.Symlinkat(l, pd.fd, dbase)
		}
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if st.Mode&unix.S_IFMT != unix.S_IFIFO && a.opts.Unprivileged {
			return fmt.Errorf("copy up device %q: not privileged: %w", target, errdefs.ErrNotImplemented)
		}
		err = unix.Mknodat(pd.fd, dbase, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	default:
		return fmt.Errorf("copy up %q: a hard link to a %s: %w", target, fileType(st.Mode), errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	a.copied[dest] = struct{}{}
	if !a.opts.Unprivileged {
		if err := unix.Fchownat(pd.fd, dbase, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("copy up %q: chown: %w", target, err)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// After chown, which clears setuid and setgid. The node is ours
		// and no symlink, so fchmodat following it is harmless.
		if err := unix.Fchmodat(pd.fd, dbase, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("copy up %q: chmod: %w", target, err)
		}
	}
	xs, err := listXattrs(fmt.Sprintf("/proc/self/fd/%d/%s", spd, tbase))
	if err != nil {
		return fmt.Errorf("copy up %q: list xattrs: %w", target, err)
	}
	for k, v := range xs {
		if err := unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", pd.fd, dbase), k, []byte(v), 0); err != nil {
			if a.opts.Unprivileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue
			}
			return fmt.Errorf("copy up %q: set xattr %q: %w", target, k, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(pd.fd, dbase, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy up %q: set times: %w", target, err)
	}
	return nil
}

// copyFileAt copies the regular file name in directory from to a new file
// toName in directory to (copy_file_range: a reflink or an in-kernel copy
// where the file system can).
func copyFileAt(from int, name string, to int, toName string) error {
	in, err := unix.Openat(from, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(in), name)
	defer src.Close()
	out, err := unix.Openat(to, toName, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(out), toName)
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// readlinkAt reads the symlink name in directory dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %o", mode&unix.S_IFMT)
}
