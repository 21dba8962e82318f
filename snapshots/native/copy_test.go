package native

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCopyTree copies a tree with every kind of file and attribute a layer
// can hold and compares each inode's metadata.
func TestCopyTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners, devices and trusted.* xattrs need root")
	}
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(src, 0o755))
	must(os.Mkdir(dst, 0o755))
	p := func(name string) string { return filepath.Join(src, name) }
	must(os.WriteFile(p("setuid"), []byte("#!/bin/sh\n"), 0o644))
	must(os.Chown(p("setuid"), 1234, 5678))
	must(unix.Chmod(p("setuid"), 0o4755|0o2000))
	must(os.Mkdir(p("tmp"), 0o755))
	must(unix.Chmod(p("tmp"), 0o1777))
	must(os.WriteFile(p("tmp/file"), []byte("in tmp"), 0o600))
	must(os.Link(p("tmp/file"), p("hardlink")))
	must(os.Symlink("tmp/file", p("symlink")))
	must(os.Lchown(p("symlink"), 42, 43))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("whiteout"), unix.S_IFCHR, 0))
	must(unix.Mknod(p("block"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	// A capability blob (VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE).
	capb := make([]byte, 20)
	binary.LittleEndian.PutUint32(capb[0:], 0x02000001)
	binary.LittleEndian.PutUint32(capb[4:], 1<<10)
	must(os.WriteFile(p("capped"), []byte("bin"), 0o755))
	must(unix.Lsetxattr(p("capped"), "security.capability", capb, 0))
	must(unix.Lsetxattr(p("capped"), "user.note", []byte("hello"), 0))
	must(unix.Lsetxattr(p("tmp"), "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Lsetxattr(p("tmp"), "user.big", bytes.Repeat([]byte("x"), 1000), 0))
	// Sparse: 1 MiB hole, 4 KiB data, 1 MiB hole.
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("d"), 4096), 1<<20)
	must(err)
	must(f.Truncate(2<<20 + 4096))
	must(f.Close())
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	for _, name := range []string{"setuid", "tmp/file", "tmp", "sparse", "fifo"} {
		must(os.Chtimes(p(name), old, old))
	}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, p("symlink"), []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))

	must(copyTree(context.Background(), src, dst))

	for _, name := range []string{"setuid", "tmp", "tmp/file", "hardlink", "symlink", "fifo", "null", "whiteout", "block", "capped", "sparse"} {
		var a, b unix.Stat_t
		must(unix.Lstat(p(name), &a))
		must(unix.Lstat(filepath.Join(dst, name), &b))
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev || a.Size != b.Size || a.Mtim != b.Mtim {
			t.Errorf("%s: copy has mode %o uid %d gid %d rdev %d size %d mtime %v, want %o %d %d %d %d %v",
				name, b.Mode, b.Uid, b.Gid, b.Rdev, b.Size, b.Mtim, a.Mode, a.Uid, a.Gid, a.Rdev, a.Size, a.Mtim)
		}
		an, _ := listXattrs(p(name))
		for _, x := range an {
			av, _ := getXattr(p(name), x)
			bv, err := getXattr(filepath.Join(dst, name), x)
			if err != nil || !bytes.Equal(av, bv) {
				t.Errorf("%s: xattr %s = %q, %v; want %q", name, x, bv, err, av)
			}
		}
	}
	var a, b unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "tmp/file"), &a))
	must(unix.Lstat(filepath.Join(dst, "hardlink"), &b))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlink not kept: inodes %d and %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	must(unix.Lstat(filepath.Join(dst, "sparse"), &a))
	if a.Blocks*512 > 64<<10 {
		t.Errorf("sparse copy takes %d bytes on disk, want about 4 KiB", a.Blocks*512)
	}
	got, err := os.ReadFile(filepath.Join(dst, "sparse"))
	must(err)
	want, _ := os.ReadFile(p("sparse"))
	if !bytes.Equal(got, want) {
		t.Error("sparse copy differs from the original")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "symlink")); l != "tmp/file" {
		t.Errorf("symlink = %q", l)
	}
}
