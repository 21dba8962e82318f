// Package mount mounts and unmounts the filesystems that snapshotters
// describe, and finds mounts left behind by a crashed process.
//
// A snapshotter returns []Mount rather than mounting itself, as containerd's
// do: the caller decides where and for how long a snapshot is mounted, and
// the same value travels over the gRPC API (ctr prints it as a mount
// command). A Mount is the arguments of mount(8):
//
//	mount -t overlay overlay -o lowerdir=/l2:/l1,upperdir=/u,workdir=/w /target
//	Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/l2:/l1", "upperdir=/u", "workdir=/w"}}
//
// # Long overlay option strings
//
// mount(2) copies the data argument into one page: 4096 bytes including the
// terminating NUL, and overlayfs fails with EINVAL (or silently truncates a
// path) beyond it. An image of 128 layers under
// /var/lib/strata/snapshots/overlayfs/snapshots/<id>/fs needs about 6 KiB of
// lowerdir. When the data does not fit, Mount.Mount uses, in this order:
//
//  1. the new mount API (fsopen, fsconfig, fsmount, move_mount), giving the
//     lower directories one at a time with the "lowerdir+" key, which has no
//     total limit. It needs Linux 6.8; on older kernels fsconfig rejects the
//     key with EINVAL and the next method is used.
//  2. mount(2) with the directories relative to their longest common parent,
//     called from a thread whose working directory is that parent. The
//     thread is locked and detached from the process's filesystem context
//     with unshare(CLONE_FS) first, so the chdir is invisible to every other
//     goroutine; the goroutine returns without unlocking, so the Go runtime
//     retires the thread instead of reusing it. A forked helper (containerd
//     re-executes itself for this) costs a process per mount and needs an
//     entry hook in every binary that links this package; the locked thread
//     costs nothing and keeps the package self-contained.
package mount

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one mount(8) invocation: a filesystem type, a source and options.
type Mount struct {
	// Type is the filesystem type: "overlay", "bind" (a bind mount of
	// Source), or any type mount(2) knows.
	Type string
	// Source is the device or directory; "overlay" for overlay mounts.
	Source string
	// Options are mount(8) options: flags such as ro, rbind, nosuid, and
	// filesystem data such as lowerdir=...
	Options []string
}

// String renders m as a mount(8) command line for target.
func (m Mount) String() string { return m.Command("<target>") }

// Command renders m as a mount(8) command that mounts it on target.
func (m Mount) Command(target string) string {
	typ := m.Type
	if typ == "bind" {
		typ = "none"
	}
	s := "mount -t " + typ + " " + quote(m.Source)
	if len(m.Options) > 0 {
		s += " -o " + quote(strings.Join(m.Options, ","))
	}
	return s + " " + quote(target)
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// flag options of mount(8); clear means the option removes the flag.
var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// parseOptions splits options into mount flags and the data string.
func parseOptions(options []string) (flags uintptr, data []string) {
	for _, o := range options {
		if f, ok := flagOptions[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, data
}

// Mount mounts m on target, which must exist.
func (m Mount) Mount(target string) error {
	flags, data := parseOptions(m.Options)
	typ := m.Type
	if typ == "bind" {
		typ = ""
		flags |= unix.MS_BIND
	}
	var err error
	switch {
	case typ == "overlay" && len(strings.Join(data, ",")) >= pageSize:
		err = mountLongOverlay(m.Source, target, flags, data)
	default:
		err = mountRetry(m.Source, target, typ, flags&^unix.MS_RDONLY|bindRO(flags), strings.Join(data, ","))
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Type, target, err)
	}
	// A bind mount ignores MS_RDONLY (and the other per-mount flags) until
	// it is remounted with them.
	if flags&unix.MS_BIND != 0 && flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC) != 0 {
		rflags := unix.MS_REMOUNT | unix.MS_BIND | flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		if err := unix.Mount("", target, "", rflags, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount bind %s read-only on %s: %w", m.Source, target, err)
		}
	}
	return nil
}

// bindRO keeps MS_RDONLY for non-bind mounts; bind mounts get it on remount.
func bindRO(flags uintptr) uintptr {
	if flags&unix.MS_BIND != 0 {
		return 0
	}
	return flags & unix.MS_RDONLY
}

const pageSize = 4096

// mountRetry calls mount(2), retrying briefly on EBUSY, which overlayfs
// returns while a just-unmounted upper or work directory is still in use.
func mountRetry(source, target, fstype string, flags uintptr, data string) error {
	var err error
	for i := 0; i < 10; i++ {
		err = unix.Mount(source, target, fstype, flags, data)
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
	return err
}

// All mounts mounts on target in order (later ones on top). When one fails,
// those already mounted are unmounted again.
func All(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := 0; j < i; j++ {
				_ = Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts the topmost mount at target with unmount(2) flags
// (unix.MNT_DETACH, ...), retrying briefly while it is busy. It returns
// nil when nothing is mounted there or target does not exist.
func Unmount(target string, flags int) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(target, flags)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}

// UnmountAll unmounts every mount stacked at target.
func UnmountAll(target string, flags int) error {
	for i := 0; i < 64; i++ {
		mounted, err := isMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := Unmount(target, flags); err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", target)
}

func isMountPoint(target string) (bool, error) {
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	infos, err := lookupExact(target)
	if err != nil {
		return false, err
	}
	return len(infos) > 0, nil
}
