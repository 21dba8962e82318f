package oci

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	// maxID is docker's bound on a numeric uid or gid.
	maxID = 1<<31 - 1
	// maxIDFile bounds /etc/passwd and /etc/group: a hostile image cannot
	// make us read a huge file (or /dev/zero, which is not regular anyway).
	maxIDFile = 8 << 20
)

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser turns -u (or the image's USER) into ids, docker's way: a name
// must be in /etc/passwd; a uid need not be (its gid is then 0 and its home
// "/"); an explicit group (name or gid) replaces the primary group and drops
// the supplementary ones, which otherwise are the groups listing the user
// by name; groupAdd come on top. It returns the user's home directory too.
func resolveUser(ctx context.Context, rootfs, user string, groupAdd []string) (specs.User, string, error) {
	var files idFiles
	files.rootfs = rootfs
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	if hasGroup && groupPart == "" {
		return specs.User{}, "", fmt.Errorf("user %q: empty group: %w", user, errdefs.ErrInvalidArgument)
	}
	u := specs.User{}
	home := "/"
	name := ""
	if userPart == "" {
		userPart = "0"
	}
	switch id, numeric, err := parseID(userPart); {
	case err != nil:
		return specs.User{}, "", fmt.Errorf("user %q: %w", user, err)
	case numeric:
		u.UID = id
		entries, err := files.passwd(ctx)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return specs.User{}, "", err
		}
		for _, e := range entries {
			if e.uid == id {
				u.GID, home, name = e.gid, e.home, e.name
				break
			}
		}
	default:
		entries, err := files.passwd(ctx)
		if err != nil {
			return specs.User{}, "", fmt.Errorf("user %q: %w", userPart, err)
		}
		i := slices.IndexFunc(entries, func(e passwdEntry) bool { return e.name == userPart })
		if i < 0 {
			return specs.User{}, "", fmt.Errorf("user %q is not in the image's /etc/passwd: %w", userPart, errdefs.ErrNotFound)
		}
		e := entries[i]
		u.UID, u.GID, home, name = e.uid, e.gid, e.home, e.name
	}
	if home == "" {
		home = "/"
	}

	if hasGroup {
		gid, err := files.lookupGroup(ctx, groupPart)
		if err != nil {
			return specs.User{}, "", fmt.Errorf("user %q: %w", user, err)
		}
		u.GID = gid
	} else if name != "" {
		groups, err := files.group(ctx)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return specs.User{}, "", err
		}
		for _, g := range groups {
			if slices.Contains(g.members, name) && !slices.Contains(u.AdditionalGids, g.gid) {
				u.AdditionalGids = append(u.AdditionalGids, g.gid)
			}
		}
	}
	for _, g := range groupAdd {
		gid, err := files.lookupGroup(ctx, g)
		if err != nil {
			return specs.User{}, "", fmt.Errorf("--group-add: %w", err)
		}
		if !slices.Contains(u.AdditionalGids, gid) {
			u.AdditionalGids = append(u.AdditionalGids, gid)
		}
	}
	return u, home, nil
}

// parseID says whether s is a numeric id, and rejects numbers out of range.
func parseID(s string) (uint32, bool, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxID {
		return 0, false, fmt.Errorf("id %s is larger than %d: %w", s, maxID, errdefs.ErrInvalidArgument)
	}
	return uint32(n), true, nil
}

// idFiles reads the image's /etc/passwd and /etc/group at most once each.
type idFiles struct {
	rootfs        string
	passwdEntries []passwdEntry
	groupEntries  []groupEntry
	passwdErr     error
	groupErr      error
	passwdRead    bool
	groupRead     bool
}

func (f *idFiles) passwd(ctx context.Context) ([]passwdEntry, error) {
	if !f.passwdRead {
		f.passwdRead = true
		var data []byte
		data, f.passwdErr = readInRoot(ctx, f.rootfs, "etc/passwd")
		if f.passwdErr == nil {
			f.passwdEntries = parsePasswd(data)
		}
	}
	return f.passwdEntries, f.passwdErr
}

func (f *idFiles) group(ctx context.Context) ([]groupEntry, error) {
	if !f.groupRead {
		f.groupRead = true
		var data []byte
		data, f.groupErr = readInRoot(ctx, f.rootfs, "etc/group")
		if f.groupErr == nil {
			f.groupEntries = parseGroup(data)
		}
	}
	return f.groupEntries, f.groupErr
}

// lookupGroup resolves a group name in /etc/group; a gid needs no file.
func (f *idFiles) lookupGroup(ctx context.Context, g string) (uint32, error) {
	id, numeric, err := parseID(g)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	if numeric {
		return id, nil
	}
	groups, err := f.group(ctx)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	i := slices.IndexFunc(groups, func(e groupEntry) bool { return e.name == g })
	if i < 0 {
		return 0, fmt.Errorf("group %q is not in the image's /etc/group: %w", g, errdefs.ErrNotFound)
	}
	return groups[i].gid, nil
}

// readInRoot reads a regular file of the rootfs, resolving its path as if
// the rootfs were / (openat2 RESOLVE_IN_ROOT): absolute symlinks and ".."
// stay inside. A missing file is ErrNotFound; anything but a regular file,
// or one larger than maxIDFile, is ErrInvalidArgument.
func readInRoot(ctx context.Context, rootfs, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(dir)
	var fd int
	for {
		fd, err = unix.Openat2(dir, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("the image has no /%s: %w", name, errdefs.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open the image's /%s: %w", name, err)
	}
	file := os.NewFile(uintptr(fd), "/"+name)
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("the image's /%s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("the image's /%s is not a regular file (%s): %w", name, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(file, maxIDFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the image's /%s: %w", name, err)
	}
	if len(data) > maxIDFile {
		return nil, fmt.Errorf("the image's /%s is larger than %d bytes: %w", name, maxIDFile, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// parsePasswd keeps the well-formed lines of an /etc/passwd
// (name:password:uid:gid:gecos:home:shell) and skips the others, as libc does.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxIDFile)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, ok1, err1 := parseID(f[2])
		gid, ok2, err2 := parseID(f[3])
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

// parseGroup keeps the well-formed lines of an /etc/group
// (name:password:gid:member,member…).
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxIDFile)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, ok, err := parseID(f[2])
		if !ok || err != nil {
			continue
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// ResolveUser resolves -u (name, uid, name:group or uid:gid) in the
// /etc/passwd and /etc/group of rootfs as Generate does, for a process
// added to a running container (exec -u; rootfs is then
// /proc/<pid>/root). An unknown name is errdefs.ErrNotFound.
func ResolveUser(ctx context.Context, rootfs, user string) (specs.User, error) {
	u, _, err := resolveUser(ctx, rootfs, user, nil)
	return u, err
}
