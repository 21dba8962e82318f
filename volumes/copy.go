package volumes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// copyUp copies the tree at dst inside rootfs into the empty directory
// data, as docker fills a new volume from the image. dst is resolved as if
// rootfs were "/" (openat2 RESOLVE_IN_ROOT), and below it every entry is
// opened by a single name with O_NOFOLLOW and made with *at calls that do
// not follow a final symlink: symlinks are copied as symlinks, so nothing
// outside rootfs is read and nothing outside data is written, whatever the
// image holds. A dst the image does not have, or that is not a directory,
// copies nothing.
func copyUp(ctx context.Context, rootfs, dst, data string) error {
	rfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root filesystem %s: %w", rootfs, err)
	}
	defer unix.Close(rfd)
	rel := strings.TrimPrefix(path.Clean("/"+dst), "/")
	if rel == "" {
		rel = "."
	}
	sfd, err := unix.Openat2(rfd, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s in the image: %w", dst, err)
	}
	src := os.NewFile(uintptr(sfd), dst)
	defer src.Close()
	dfd, err := unix.Open(data, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open volume %s: %w", data, err)
	}
	dstDir := os.NewFile(uintptr(dfd), data)
	defer dstDir.Close()
	c := &copier{ctx: ctx, links: map[fileID]link{}, dirs: map[string]int{}}
	defer c.close()
	if err := c.dir(src, dstDir, ""); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	return c.attrs(sfd, dfd, &st, "/")
}

type fileID struct{ dev, ino uint64 }

// link is where the first copy of a hard-linked file went: its directory's
// descriptor (a dup kept open while the copy runs) and name.
type link struct {
	dirfd int
	name  string
}

type copier struct {
	ctx   context.Context
	links map[fileID]link
	// dirs are the dups of the directories links name, by path.
	dirs map[string]int
}

func (c *copier) close() {
	for _, fd := range c.dirs {
		unix.Close(fd)
	}
}

// dir copies the entries of src into dst; rel names src for errors.
func (c *copier) dir(src, dst *os.File, rel string) error {
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", relName(rel), err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.entry(sfd, dfd, rel, name); err != nil {
			return err
		}
	}
	return nil
}

func relName(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

func (c *copier) entry(sfd, dfd int, parent, name string) error {
	rel := parent + "/" + name
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", rel, err)
		}
		s, err := openAt(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer s.Close()
		d, err := openAt(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("open copy of %s: %w", rel, err)
		}
		defer d.Close()
		if err := c.dir(s, d, rel); err != nil {
			return err
		}
		// Attributes last: a read-only directory must still take its
		// entries, and its times its entries' creation.
		return c.attrs(int(s.Fd()), int(d.Fd()), &st, rel)
	case unix.S_IFREG:
		id := fileID{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if l, ok := c.links[id]; ok {
				if err := unix.Linkat(l.dirfd, l.name, dfd, name, 0); err != nil {
					return fmt.Errorf("link %s: %w", rel, err)
				}
				return nil
			}
		}
		s, err := openAt(sfd, name, unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer s.Close()
		d, err := openAt(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL)
		if err != nil {
			return fmt.Errorf("create copy of %s: %w", rel, err)
		}
		defer d.Close()
		if _, err := io.Copy(d, s); err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		if st.Nlink > 1 {
			dup, ok := c.dirs[parent]
			if !ok {
				if dup, err = unix.FcntlInt(uintptr(dfd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
					return err
				}
				c.dirs[parent] = dup
			}
			c.links[id] = link{dirfd: dup, name: name}
		}
		return c.attrs(int(s.Fd()), int(d.Fd()), &st, rel)
	case unix.S_IFLNK:
		target, err := readlinkAt(sfd, name)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("symlink %s: %w", rel, err)
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		// Symlinks' xattrs are not copied (openat cannot open a symlink
		// for fgetxattr, and lgetxattr by path would leave the
		// descriptors' confinement); their times are.
		return unix.UtimesNanoAt(dfd, name, times(&st), unix.AT_SYMLINK_NOFOLLOW)
	default: // devices, FIFOs, sockets
		if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", rel, err)
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		// mknod obeys the umask; fchmodat follows a symlink, but the
		// name is the node just made in a directory we made.
		if err := unix.Fchmodat(dfd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
		return unix.UtimesNanoAt(dfd, name, times(&st), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// attrs gives the copy d the owner, mode, xattrs and times of s.
func (c *copier) attrs(s, d int, st *unix.Stat_t, rel string) error {
	if err := copyXattrs(s, d); err != nil {
		return fmt.Errorf("xattrs of %s: %w", relName(rel), err)
	}
	// chown before chmod: chown clears setuid and setgid.
	if err := unix.Fchown(d, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", relName(rel), err)
	}
	if err := unix.Fchmod(d, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", relName(rel), err)
	}
	ts := times(st)
	if err := unix.UtimesNanoAt(d, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("times of %s: %w", relName(rel), err)
	}
	return nil
}

func times(st *unix.Stat_t) []unix.Timespec {
	return []unix.Timespec{st.Atim, st.Mtim}
}

func openAt(dirfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
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

// copyXattrs copies every extended attribute of s the filesystem of d
// takes; one d's filesystem does not support is skipped, as cp -a does.
func copyXattrs(s, d int) error {
	names, err := listXattrs(s)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	for _, name := range names {
		val, err := getXattr(s, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", name, err)
		}
		if err := unix.Fsetxattr(d, name, val, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	for {
		n, err := unix.Flistxattr(fd, nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

func getXattr(fd int, name string) ([]byte, error) {
	for {
		n, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
