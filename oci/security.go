package oci

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultSeccomp is moby's default profile (the one docker, podman and
// containerd ship), filtered for the spec's capabilities: a container given
// CAP_SYS_ADMIN may call what that capability is for.
func defaultSeccomp(spec *specs.Spec) (*specs.LinuxSeccomp, error) {
	p, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	return p, nil
}

// hostDevices lists the host's device nodes for --privileged, as docker
// does, leaving out what the default mounts provide (/dev/pts, /dev/shm,
// /dev/mqueue) and the console.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) || os.IsPermission(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			switch p {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd":
				return fs.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || strings.HasPrefix(d.Name(), ".") || d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil // gone since the walk listed it
		}
		typ := "b"
		if st.Mode&unix.S_IFMT == unix.S_IFCHR {
			typ = "c"
		}
		mode := fs.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path:     p,
			Type:     typ,
			Major:    int64(unix.Major(st.Rdev)),
			Minor:    int64(unix.Minor(st.Rdev)),
			FileMode: &mode,
			UID:      &uid,
			GID:      &gid,
		})
		return nil
	})
	return out, err
}
