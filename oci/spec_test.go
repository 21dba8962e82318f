package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// testRootfs writes a rootfs with an /etc/passwd and /etc/group like a
// Debian image's, plus a user "app" in two extra groups.
func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"+
		"# a comment\n"+
		"broken line\n"+
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"+
		"app:x:1000:1000:App:/home/app:/bin/sh\n")
	write(t, root, "etc/group", "root:x:0:\n"+
		"daemon:x:1:\n"+
		"staff:x:50:app\n"+
		"audio:x:29:daemon,app\n"+
		"app:x:1000:\n")
	return root
}

func write(t *testing.T, root, name, data string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func generate(t *testing.T, opts Options) *specs.Spec {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "0123456789abcdef0123"
	}
	if opts.Rootfs == "" {
		opts.Rootfs = testRootfs(t)
	}
	if len(opts.Args) == 0 && opts.Image.Cmd == nil && opts.Image.Entrypoint == nil && opts.Entrypoint == nil {
		opts.Args = []string{"true"}
	}
	spec, err := Generate(context.Background(), opts)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return spec
}

func str(s string) *string { return &s }

func TestCommand(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry", "-x"}, Cmd: []string{"serve", "--port=80"}}
	tests := []struct {
		name       string
		img        ocispec.ImageConfig
		args       []string
		entrypoint *string
		want       []string
	}{
		{name: "image", img: img, want: []string{"/entry", "-x", "serve", "--port=80"}},
		{name: "args replace cmd", img: img, args: []string{"sh"}, want: []string{"/entry", "-x", "sh"}},
		{name: "entrypoint drops cmd", img: img, entrypoint: str("/bin/sh"), want: []string{"/bin/sh"}},
		{name: "entrypoint and args", img: img, entrypoint: str("/bin/sh"), args: []string{"-c", "id"}, want: []string{"/bin/sh", "-c", "id"}},
		{name: "empty entrypoint and args", img: img, entrypoint: str(""), args: []string{"id"}, want: []string{"id"}},
		{name: "cmd only", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, want: []string{"sh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, Options{Image: tt.img, Args: tt.args, Entrypoint: tt.entrypoint})
			if !slices.Equal(spec.Process.Args, tt.want) {
				t.Errorf("Args = %q, want %q", spec.Process.Args, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"nothing", Options{}},
		{"empty entrypoint clears the image's", Options{Image: img, Entrypoint: str("")}},
	} {
		tt.opts.ID, tt.opts.Rootfs = "c1", testRootfs(t)
		_, err := Generate(context.Background(), tt.opts)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no command") {
			t.Errorf("%s: Generate = %v, want InvalidArgument naming the missing command", tt.name, err)
		}
	}
}

func TestEnv(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	t.Setenv("STRATA_OCI_TEST_HOST", "from-host")
	write(t, dir, "env", "\ufeff# comment\n\n  A=file\nB=file with spaces  \nSTRATA_OCI_TEST_HOST\nSTRATA_OCI_TEST_UNSET\n")
	spec := generate(t, Options{
		Image:    ocispec.ImageConfig{Env: []string{"A=image", "C=image", "PATH=/opt/bin"}},
		EnvFiles: []string{envFile},
		Env:      []string{"C=flag", "D=x=y", "E="},
		User:     "app",
		TTY:      true,
		Hostname: "web",
	})
	want := []string{"A=file", "C=flag", "PATH=/opt/bin", "B=file with spaces  ", "STRATA_OCI_TEST_HOST=from-host",
		"D=x=y", "E=", "HOSTNAME=web", "TERM=xterm", "HOME=/home/app"}
	if !slices.Equal(spec.Process.Env, want) {
		t.Errorf("Env = %q\nwant %q", spec.Process.Env, want)
	}

	spec = generate(t, Options{ID: "abcdef0123456789"})
	want = []string{"PATH=" + DefaultPath, "HOSTNAME=abcdef012345", "HOME=/root"}
	if !slices.Equal(spec.Process.Env, want) {
		t.Errorf("default Env = %q, want %q", spec.Process.Env, want)
	}

	write(t, dir, "bad", "OK=1\nBAD NAME=2\n")
	for _, opts := range []Options{
		{Env: []string{"=x"}},
		{Env: []string{"A B=x"}},
		{Env: []string{"BARE"}},
		{EnvFiles: []string{filepath.Join(dir, "bad")}},
	} {
		opts.ID, opts.Rootfs, opts.Args = "c1", dir, []string{"true"}
		if _, err := Generate(context.Background(), opts); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Generate(env %q, files %q) = %v, want InvalidArgument", opts.Env, opts.EnvFiles, err)
		}
	}
	_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: dir, Args: []string{"true"}, EnvFiles: []string{filepath.Join(dir, "missing")}})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Generate(missing env file) = %v, want not-exist naming it", err)
	}
}

func TestUser(t *testing.T) {
	root := testRootfs(t)
	tests := []struct {
		user     string
		groupAdd []string
		want     specs.User
		home     string
	}{
		{user: "", want: specs.User{}, home: "/root"},
		{user: "root", want: specs.User{}, home: "/root"},
		{user: "app", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 29}}, home: "/home/app"},
		{user: "1000", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50, 29}}, home: "/home/app"},
		{user: "4242", want: specs.User{UID: 4242}, home: "/"},
		{user: "4242:4343", want: specs.User{UID: 4242, GID: 4343}, home: "/"},
		{user: "app:staff", want: specs.User{UID: 1000, GID: 50}, home: "/home/app"},
		{user: "daemon:0", want: specs.User{UID: 1, GID: 0}, home: "/usr/sbin"},
		{user: "daemon", groupAdd: []string{"staff", "777", "audio"}, want: specs.User{UID: 1, GID: 1, AdditionalGids: []uint32{29, 50, 777}}, home: "/usr/sbin"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			spec := generate(t, Options{Rootfs: root, User: tt.user, GroupAdd: tt.groupAdd})
			u := spec.Process.User
			if u.UID != tt.want.UID || u.GID != tt.want.GID || !slices.Equal(u.AdditionalGids, tt.want.AdditionalGids) {
				t.Errorf("User(%q) = %+v, want %+v", tt.user, u, tt.want)
			}
			if !slices.Contains(spec.Process.Env, "HOME="+tt.home) {
				t.Errorf("User(%q): env %q has no HOME=%s", tt.user, spec.Process.Env, tt.home)
			}
		})
	}
	// The image's USER applies when -u is not given.
	spec := generate(t, Options{Rootfs: root, Image: ocispec.ImageConfig{User: "app", Cmd: []string{"id"}}})
	if spec.Process.User.UID != 1000 {
		t.Errorf("image USER app: uid %d, want 1000", spec.Process.User.UID)
	}

	bad := []struct {
		user     string
		groupAdd []string
		want     error
		names    string
	}{
		{user: "nobody", want: errdefs.ErrNotFound, names: `"nobody"`},
		{user: "app:wheel", want: errdefs.ErrNotFound, names: `"wheel"`},
		{user: "app", groupAdd: []string{"wheel"}, want: errdefs.ErrNotFound, names: `"wheel"`},
		{user: "app:", want: errdefs.ErrInvalidArgument, names: `"app:"`},
		{user: "99999999999", want: errdefs.ErrInvalidArgument, names: "99999999999"},
	}
	for _, tt := range bad {
		_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: root, Args: []string{"id"}, User: tt.user, GroupAdd: tt.groupAdd})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("Generate(user %q, group-add %q) = %v, want %v naming %s", tt.user, tt.groupAdd, err, tt.want, tt.names)
		}
	}
}

// TestUserConfined: a hostile image's /etc/passwd that is a symlink out of
// the rootfs (absolute or by "..") resolves inside it, so the host's users
// (here a file outside the rootfs that knows "hostonly") are never read.
func TestUserConfined(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "passwd", "hostonly:x:4321:4321::/host:/bin/sh\n")
	write(t, outside, "group", "hostgroup:x:4321:\n")
	for _, target := range []string{
		filepath.Join(outside, "passwd"),
		"../../../../../../../../.." + filepath.Join(outside, "passwd"),
	} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(strings.Replace(target, "passwd", "group", 1), filepath.Join(root, "etc/group")); err != nil {
			t.Fatal(err)
		}
		// Control: without confinement the link does reach the host's file.
		if b, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || !strings.Contains(string(b), "hostonly") {
			t.Fatalf("the fixture's link %s does not reach the outside file: %v", target, err)
		}
		_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: root, Args: []string{"id"}, User: "hostonly"})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("user hostonly through /etc/passwd -> %s: %v, want NotFound", target, err)
		}
		_, err = Generate(context.Background(), Options{ID: "c1", Rootfs: root, Args: []string{"id"}, User: "0:hostgroup"})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("group hostgroup through /etc/group -> %s: %v, want NotFound", target, err)
		}
	}

	// A link that stays inside resolves as if the rootfs were /.
	root := t.TempDir()
	write(t, root, "usr/lib/passwd", "app:x:1000:1000::/app:/bin/sh\n")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	spec := generate(t, Options{Rootfs: root, User: "app"})
	if spec.Process.User.UID != 1000 {
		t.Errorf("user app through /etc/passwd -> /usr/lib/passwd: uid %d, want 1000", spec.Process.User.UID)
	}

	// A FIFO as /etc/passwd neither blocks nor is read.
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: root, Args: []string{"id"}, User: "app"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("user app with a FIFO /etc/passwd: %v, want InvalidArgument (not a regular file)", err)
	}
	// A numeric user needs no /etc/passwd.
	spec = generate(t, Options{Rootfs: t.TempDir(), User: "7:8"})
	if u := spec.Process.User; u.UID != 7 || u.GID != 8 {
		t.Errorf("user 7:8 without /etc/passwd = %+v", u)
	}
}

func TestCapabilities(t *testing.T) {
	all := AllCapabilities()
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	tests := []struct {
		name       string
		privileged bool
		add, drop  []string
		want       []string
	}{
		{name: "default", want: DefaultCapabilities},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"net_admin"}, want: []string{"CAP_NET_ADMIN"}},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"CAP_CHOWN"}, want: without(all, "CAP_CHOWN")},
		{name: "drop and add", drop: []string{"NET_RAW", "cap_mknod"}, add: []string{"SYS_ADMIN", "CAP_SYS_ADMIN"},
			want: append(without(DefaultCapabilities, "CAP_NET_RAW", "CAP_MKNOD"), "CAP_SYS_ADMIN")},
		{name: "privileged", privileged: true, want: all},
		{name: "privileged drop", privileged: true, drop: []string{"SYS_ADMIN"}, want: without(all, "CAP_SYS_ADMIN")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := generate(t, Options{Privileged: tt.privileged, CapAdd: tt.add, CapDrop: tt.drop})
			c := spec.Process.Capabilities
			if !slices.Equal(c.Bounding, tt.want) || !slices.Equal(c.Effective, tt.want) || !slices.Equal(c.Permitted, tt.want) {
				t.Errorf("capabilities = %q, want %q", c.Bounding, tt.want)
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %q, ambient %q, want none", c.Inheritable, c.Ambient)
			}
		})
	}
	for _, bad := range [][2][]string{{{"CAP_FLY"}, nil}, {nil, {"NET_ADMIN", "teleport"}}} {
		_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: t.TempDir(), Args: []string{"true"}, CapAdd: bad[0], CapDrop: bad[1]})
		name := append(bad[0], bad[1]...)[len(append(bad[0], bad[1]...))-1]
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("cap-add %q cap-drop %q: %v, want InvalidArgument naming %q", bad[0], bad[1], err, name)
		}
	}
}

// TestUnavailableCapability: a capability the kernel knows but this
// process cannot give (this machine's sandbox lacks CAP_SYS_RESOURCE) is
// refused by name rather than left to runc's "operation not permitted".
func TestUnavailableCapability(t *testing.T) {
	all := AllCapabilities()
	for _, c := range capabilityNames {
		if slices.Contains(all, c) {
			continue
		}
		_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: t.TempDir(), Args: []string{"true"}, CapAdd: []string{c}})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), c) {
			t.Errorf("cap-add %s (unavailable here): %v, want FailedPrecondition naming it", c, err)
		}
		return
	}
	t.Logf("every capability is available to this process: nothing to refuse")
}

func TestSecurityDefaults(t *testing.T) {
	spec := generate(t, Options{})
	if !spec.Process.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
	if spec.Linux.Seccomp == nil || spec.Linux.Seccomp.DefaultAction != specs.ActErrno || len(spec.Linux.Seccomp.Syscalls) < 10 {
		t.Errorf("seccomp = %+v, want the default profile (ERRNO by default)", spec.Linux.Seccomp)
	}
	if !seccompAllows(spec.Linux.Seccomp, "read") || seccompAllows(spec.Linux.Seccomp, "mount") {
		t.Error("the default profile should allow read and, without CAP_SYS_ADMIN, not mount")
	}
	if !slices.Contains(spec.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(spec.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %q, read-only %q", spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
	if m := mountAt(spec, "/sys"); m == nil || !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys mount %+v, want read-only", m)
	}
	if m := mountAt(spec, "/sys/fs/cgroup"); m == nil || !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys/fs/cgroup mount %+v, want read-only", m)
	}
	for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"} {
		if mountAt(spec, dst) == nil {
			t.Errorf("no default mount on %s", dst)
		}
	}
	if d := spec.Linux.Resources.Devices; len(d) == 0 || d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device rules %+v, want deny all first", d)
	}
	if len(spec.Linux.Devices) != 0 {
		t.Errorf("devices %+v, want none beyond runc's defaults", spec.Linux.Devices)
	}

	// With CAP_SYS_ADMIN the profile lets mount through, as docker's.
	spec = generate(t, Options{CapAdd: []string{"SYS_ADMIN"}})
	if !seccompAllows(spec.Linux.Seccomp, "mount") {
		t.Error("with CAP_SYS_ADMIN the default profile should allow mount")
	}

	spec = generate(t, Options{Privileged: true})
	if spec.Process.NoNewPrivileges || spec.Linux.Seccomp != nil || len(spec.Linux.MaskedPaths) != 0 || len(spec.Linux.ReadonlyPaths) != 0 {
		t.Errorf("privileged: nnp %v, seccomp %v, masked %q, ro %q; want all lifted",
			spec.Process.NoNewPrivileges, spec.Linux.Seccomp != nil, spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
	if m := mountAt(spec, "/sys"); m == nil || slices.Contains(m.Options, "ro") {
		t.Errorf("privileged /sys mount %+v, want read-write", m)
	}
	if d := spec.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow {
		t.Errorf("privileged device rules %+v, want allow all", d)
	}
	if !slices.ContainsFunc(spec.Linux.Devices, func(d specs.LinuxDevice) bool {
		return d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3
	}) {
		t.Errorf("privileged devices %+v lack the host's /dev/null", spec.Linux.Devices)
	}
}

func seccompAllows(s *specs.LinuxSeccomp, name string) bool {
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
			return true
		}
	}
	return false
}

func mountAt(spec *specs.Spec, dst string) *specs.Mount {
	for i := range spec.Mounts {
		if spec.Mounts[i].Destination == dst {
			return &spec.Mounts[i]
		}
	}
	return nil
}

func TestMounts(t *testing.T) {
	src := t.TempDir()
	spec := generate(t, Options{
		Binds:  []string{src + ":/data:ro", src + "/:/rw/", src + ":/shared:rw,rshared"},
		Tmpfs:  []string{"/run", "/dev/shm:size=1m,exec"},
		Mounts: []specs.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/etc/hosts", Options: []string{"rbind", "ro"}}},
	})
	tests := []struct {
		dst  string
		want specs.Mount
	}{
		{"/data", specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "ro", "rprivate"}}},
		{"/rw", specs.Mount{Destination: "/rw", Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}}},
		{"/shared", specs.Mount{Destination: "/shared", Type: "bind", Source: src, Options: []string{"rbind", "rshared"}}},
		{"/run", specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev"}}},
		{"/dev/shm", specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "size=1m", "exec"}}},
		{"/etc/hosts", specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/etc/hosts", Options: []string{"rbind", "ro"}}},
	}
	for _, tt := range tests {
		got := mountAt(spec, tt.dst)
		if got == nil || got.Type != tt.want.Type || got.Source != tt.want.Source || !slices.Equal(got.Options, tt.want.Options) {
			t.Errorf("mount at %s = %+v, want %+v", tt.dst, got, tt.want)
		}
	}
	n := 0
	for _, m := range spec.Mounts {
		if m.Destination == "/dev/shm" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d mounts on /dev/shm, want the --tmpfs one only", n)
	}

	bad := []struct {
		opts Options
		want error
		in   string
	}{
		{Options{Binds: []string{filepath.Join(src, "missing") + ":/x"}}, errdefs.ErrNotFound, filepath.Join(src, "missing")},
		{Options{Binds: []string{"vol:/x"}}, errdefs.ErrInvalidArgument, `"vol"`},
		{Options{Binds: []string{src + ":x"}}, errdefs.ErrInvalidArgument, `"x"`},
		{Options{Binds: []string{src + ":/x:rx"}}, errdefs.ErrInvalidArgument, `"rx"`},
		{Options{Binds: []string{src}}, errdefs.ErrInvalidArgument, src},
		{Options{Binds: []string{src + ":/"}}, errdefs.ErrInvalidArgument, "/"},
		{Options{Binds: []string{src + ":/x", src + ":/x/"}}, errdefs.ErrInvalidArgument, "/x"},
		{Options{Tmpfs: []string{"tmp"}}, errdefs.ErrInvalidArgument, `"tmp"`},
	}
	for _, tt := range bad {
		tt.opts.ID, tt.opts.Rootfs, tt.opts.Args = "c1", t.TempDir(), []string{"true"}
		_, err := Generate(context.Background(), tt.opts)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("Generate(binds %q, tmpfs %q) = %v, want %v naming %s", tt.opts.Binds, tt.opts.Tmpfs, err, tt.want, tt.in)
		}
	}
}

// TestMountOrder: a mount on a directory comes before the mounts under
// it, whichever flag made them (a volume under a bind stays visible);
// mounts at one depth keep their order.
func TestMountOrder(t *testing.T) {
	src := t.TempDir()
	spec := generate(t, Options{
		Mounts: []specs.Mount{
			{Destination: "/data/sub/deeper", Type: "bind", Source: src, Options: []string{"rbind"}},
			{Destination: "/data/sub", Type: "bind", Source: src, Options: []string{"rbind"}},
			{Destination: "/b", Type: "bind", Source: src, Options: []string{"rbind"}},
		},
		Binds: []string{src + ":/data", src + ":/a"},
		Tmpfs: []string{"/data/sub/deeper/t"},
	})
	var got []string
	for _, m := range spec.Mounts {
		if m.Source == src || m.Destination == "/data/sub/deeper/t" {
			got = append(got, m.Destination)
		}
	}
	if want := []string{"/b", "/data", "/a", "/data/sub", "/data/sub/deeper", "/data/sub/deeper/t"}; !slices.Equal(got, want) {
		t.Errorf("user mounts in order %v, want %v", got, want)
	}
}

func TestResources(t *testing.T) {
	spec := generate(t, Options{ID: "web", Memory: 64 << 20, CPUs: 0.5, PidsLimit: 20, ReadOnly: true, CgroupParent: "/strata/default"})
	r := spec.Linux.Resources
	if r.Memory == nil || *r.Memory.Limit != 64<<20 {
		t.Errorf("memory = %+v, want 64 MiB", r.Memory)
	}
	if swapAccounted() && (r.Memory.Swap == nil || *r.Memory.Swap != 128<<20) {
		t.Errorf("memory+swap = %v, want twice the memory (docker's default)", r.Memory.Swap)
	}
	swapSpec := generate(t, Options{Memory: 64 << 20, MemorySwap: 96 << 20})
	if s := swapSpec.Linux.Resources.Memory.Swap; s == nil || *s != 96<<20 {
		t.Errorf("--memory-swap 96m: swap %v", s)
	}
	swapSpec = generate(t, Options{Memory: 64 << 20, MemorySwap: -1})
	if s := swapSpec.Linux.Resources.Memory.Swap; s != nil {
		t.Errorf("--memory-swap -1: swap %v, want none", *s)
	}
	if r.CPU == nil || *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 {
		t.Errorf("cpu = %+v, want 50000/100000", r.CPU)
	}
	if r.Pids == nil || *r.Pids.Limit != 20 {
		t.Errorf("pids = %+v, want 20", r.Pids)
	}
	if spec.Linux.CgroupsPath != "/strata/default/web" {
		t.Errorf("cgroups path %q", spec.Linux.CgroupsPath)
	}
	if !spec.Root.Readonly {
		t.Error("--read-only: root is writable")
	}
	spec = generate(t, Options{ID: "web"})
	if r := spec.Linux.Resources; r.Memory != nil || r.CPU != nil || r.Pids != nil || spec.Linux.CgroupsPath != "/strata/web" || spec.Root.Readonly {
		t.Errorf("defaults: resources %+v, cgroups path %q, read-only %v", r, spec.Linux.CgroupsPath, spec.Root.Readonly)
	}
	for _, opts := range []Options{{Memory: 1 << 20}, {Memory: -1}, {CPUs: 1e6}, {CPUs: -1}, {MemorySwap: 64 << 20}, {Memory: 64 << 20, MemorySwap: 32 << 20}} {
		opts.ID, opts.Rootfs, opts.Args = "c1", t.TempDir(), []string{"true"}
		if _, err := Generate(context.Background(), opts); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Generate(memory %d, cpus %g) = %v, want InvalidArgument", opts.Memory, opts.CPUs, err)
		}
	}
}

func TestNamespacesAndHostname(t *testing.T) {
	has := func(spec *specs.Spec, typ specs.LinuxNamespaceType) (string, bool) {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == typ {
				return ns.Path, true
			}
		}
		return "", false
	}
	spec := generate(t, Options{ID: "0123456789abcdef"})
	if p, ok := has(spec, specs.NetworkNamespace); !ok || p != "" {
		t.Errorf("default network namespace %q %v, want a new one", p, ok)
	}
	if spec.Hostname != "0123456789ab" {
		t.Errorf("hostname %q, want the ID's first 12 characters", spec.Hostname)
	}
	if spec.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctl %v", spec.Linux.Sysctl)
	}
	spec = generate(t, Options{NetNSPath: "/run/strata/netns/x", Hostname: "web.local"})
	if p, _ := has(spec, specs.NetworkNamespace); p != "/run/strata/netns/x" || spec.Hostname != "web.local" {
		t.Errorf("network namespace %q, hostname %q", p, spec.Hostname)
	}
	spec = generate(t, Options{HostNetwork: true})
	if _, ok := has(spec, specs.NetworkNamespace); ok || spec.Linux.Sysctl != nil {
		t.Errorf("host network: has a network namespace or sysctls %v", spec.Linux.Sysctl)
	}
	for _, h := range []string{"-bad", "a_b", strings.Repeat("a", 65), "a..b"} {
		_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: t.TempDir(), Args: []string{"true"}, Hostname: h})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), h) {
			t.Errorf("hostname %q: %v, want InvalidArgument naming it", h, err)
		}
	}
	for _, w := range []struct{ flag, image, want string }{{"", "", "/"}, {"", "/srv/", "/srv"}, {"/tmp", "/srv", "/tmp"}} {
		spec := generate(t, Options{Workdir: w.flag, Image: ocispec.ImageConfig{WorkingDir: w.image, Cmd: []string{"true"}}})
		if spec.Process.Cwd != w.want {
			t.Errorf("workdir %q image %q: cwd %q, want %q", w.flag, w.image, spec.Process.Cwd, w.want)
		}
	}
	if _, err := Generate(context.Background(), Options{ID: "c1", Rootfs: t.TempDir(), Args: []string{"true"}, Workdir: "rel"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative workdir: %v", err)
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", unix.SIGTERM}, {"term", unix.SIGTERM}, {"SIGKILL", unix.SIGKILL}, {"9", unix.SIGKILL},
		{"sigusr1", unix.SIGUSR1}, {"SIGRTMIN+3", 37}, {"RTMIN", 34}, {"SIGRTMAX-1", 63}, {"64", 64},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "65", "SIGFOO", "RTMIN-1", "RTMAX+1", "RTMIN+31", "-9"} {
		if _, err := ParseSignal(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseSignal(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	if s, err := StopSignal(ocispec.ImageConfig{}); err != nil || s != unix.SIGTERM {
		t.Errorf("StopSignal(no STOPSIGNAL) = %v, %v", s, err)
	}
	if s, err := StopSignal(ocispec.ImageConfig{StopSignal: "SIGQUIT"}); err != nil || s != unix.SIGQUIT {
		t.Errorf("StopSignal(SIGQUIT) = %v, %v", s, err)
	}
	_, err := Generate(context.Background(), Options{ID: "c1", Rootfs: t.TempDir(), Image: ocispec.ImageConfig{StopSignal: "SIGNOPE", Cmd: []string{"x"}}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "SIGNOPE") {
		t.Errorf("Generate with STOPSIGNAL SIGNOPE: %v", err)
	}
}

// TestConsoleSize: the terminal's size is in the spec with a terminal,
// and only then.
func TestConsoleSize(t *testing.T) {
	size := &specs.Box{Width: 111, Height: 37}
	spec := generate(t, Options{TTY: true, ConsoleSize: size})
	if !spec.Process.Terminal || spec.Process.ConsoleSize == nil || *spec.Process.ConsoleSize != *size {
		t.Errorf("TTY with ConsoleSize %v: terminal %v, ConsoleSize %v", *size, spec.Process.Terminal, spec.Process.ConsoleSize)
	}
	if spec := generate(t, Options{ConsoleSize: size}); spec.Process.Terminal || spec.Process.ConsoleSize != nil {
		t.Errorf("ConsoleSize without TTY: terminal %v, ConsoleSize %v; want neither", spec.Process.Terminal, spec.Process.ConsoleSize)
	}
	if spec := generate(t, Options{TTY: true}); spec.Process.ConsoleSize != nil {
		t.Errorf("TTY without a size: ConsoleSize %v, want none", spec.Process.ConsoleSize)
	}
}
