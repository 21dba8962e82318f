package mount

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noNewMountAPI is set once fsconfig has rejected "lowerdir+" (Linux < 6.8)
// so that later long mounts go straight to the relative-path method. Tests
// set it to exercise that method on new kernels.
var noNewMountAPI atomic.Bool

// mountLongOverlay mounts an overlay whose option string does not fit in a
// page; see the package documentation.
func mountLongOverlay(source, target string, flags uintptr, data []string) error {
	if !noNewMountAPI.Load() {
		err := mountOverlayFsconfig(source, target, flags, data)
		if !errors.Is(err, errNoLowerdirPlus) {
			return err
		}
		noNewMountAPI.Store(true)
	}
	return mountOverlayRelative(source, target, flags, data)
}

var errNoLowerdirPlus = errors.New("mount: kernel does not support the lowerdir+ overlay option")

// mountOverlayFsconfig mounts with fsopen/fsconfig, one "lowerdir+" per
// layer.
func mountOverlayFsconfig(source, target string, flags uintptr, data []string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return errNoLowerdirPlus
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", source); err != nil {
		return fmt.Errorf("fsconfig source: %w", err)
	}
	for _, o := range data {
		key, value, hasValue := strings.Cut(o, "=")
		if key == "lowerdir" {
			for _, dir := range splitLowerdirs(value) {
				if err := unix.FsconfigSetString(fd, "lowerdir+", dir); err != nil {
					// Before Linux 6.5 overlay parses options the legacy
					// way: lowerdir+ is accepted as any key and fails later,
					// once the page of options is full.
					if errors.Is(err, unix.EINVAL) {
						return errNoLowerdirPlus
					}
					return fmt.Errorf("fsconfig lowerdir+ %s: %w", dir, err)
				}
			}
			continue
		}
		if hasValue {
			err = unix.FsconfigSetString(fd, key, value)
		} else {
			err = unix.FsconfigSetFlag(fd, key)
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		if errors.Is(err, unix.EINVAL) && legacyOverlayParser() {
			// The legacy parser only rejects "lowerdir+" here ("unknown
			// option"): the fallback mounts the same options or says what
			// is wrong.
			return errNoLowerdirPlus
		}
		// On kernels that parse overlay options themselves, EINVAL here
		// is about these options (one lower layer without an upper, a
		// missing workdir…), not about lowerdir+: say so, with the
		// kernel's own words when it logged any.
		if msg := fsContextLog(fd); msg != "" {
			return fmt.Errorf("fsconfig create: %w (%s)", err, msg)
		}
		return fmt.Errorf("fsconfig create: %w", err)
	}
	var attrs int
	if flags&unix.MS_RDONLY != 0 {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		attrs |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		attrs |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		attrs |= unix.MOUNT_ATTR_NOEXEC
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// legacyOverlayParser reports whether the running kernel predates overlayfs's
// own fsconfig parser (Linux 6.5), which accepts any key and only fails at
// create time.
func legacyOverlayParser() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return true
	}
	return kernelBefore(unix.ByteSliceToString(u.Release[:]), 6, 5)
}

// kernelBefore reports whether a kernel release string ("6.1.0-18-amd64")
// is older than major.minor; an unparsable one counts as older.
func kernelBefore(release string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(release, "%d.%d", &ma, &mi); n != 2 {
		return true
	}
	return ma < major || (ma == major && mi < minor)
}

// fsContextLog reads the messages the kernel queued on a filesystem context
// ("e overlayfs: …"), joined by "; ".
func fsContextLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for i := 0; i < 16; i++ {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// splitLowerdirs splits a lowerdir value at the colons that are not escaped.
func splitLowerdirs(v string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			b.WriteByte(v[i+1])
			i++
		case v[i] == ':':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(v[i])
		}
	}
	return append(out, b.String())
}

// mountOverlayRelative rewrites lowerdir, upperdir and workdir relative to
// their longest common parent directory and mounts from there.
func mountOverlayRelative(source, target string, flags uintptr, data []string) error {
	var dirs []string
	for _, o := range data {
		key, value, _ := strings.Cut(o, "=")
		switch key {
		case "lowerdir":
			dirs = append(dirs, splitLowerdirs(value)...)
		case "upperdir", "workdir":
			dirs = append(dirs, value)
		}
	}
	common := commonParent(dirs)
	if common == "" {
		return fmt.Errorf("overlay options are %d bytes, more than a page, and the directories share no parent to shorten them: %w", len(strings.Join(data, ",")), unix.EINVAL)
	}
	rel := func(p string) string {
		r, err := filepath.Rel(common, p)
		if err != nil {
			return p
		}
		return r
	}
	var short []string
	for _, o := range data {
		key, value, _ := strings.Cut(o, "=")
		switch key {
		case "lowerdir":
			var ls []string
			for _, l := range splitLowerdirs(value) {
				ls = append(ls, strings.ReplaceAll(rel(l), ":", `\:`))
			}
			o = "lowerdir=" + strings.Join(ls, ":")
		case "upperdir", "workdir":
			o = key + "=" + rel(value)
		}
		short = append(short, o)
	}
	joined := strings.Join(short, ",")
	if len(joined) >= pageSize {
		return fmt.Errorf("overlay options are %d bytes even relative to %s, more than a page: %w", len(joined), common, unix.EINVAL)
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: after unshare(CLONE_FS) this thread's working
		// directory differs from the process's, so the runtime must
		// retire the thread when this goroutine ends.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(common); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", common, err)
			return
		}
		errc <- mountRetry(source, absTarget, "overlay", flags, joined)
	}()
	return <-errc
}

// commonParent returns the longest directory that contains every path in
// paths, or "" when they are not all absolute.
func commonParent(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	var common []string
	for i, p := range paths {
		if !filepath.IsAbs(p) {
			return ""
		}
		parts := strings.Split(filepath.Clean(p), "/")
		parts = parts[:len(parts)-1] // the parent of each path, at most
		if i == 0 {
			common = parts
			continue
		}
		n := 0
		for n < len(common) && n < len(parts) && common[n] == parts[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) <= 1 {
		return "/"
	}
	return strings.Join(common, "/")
}
