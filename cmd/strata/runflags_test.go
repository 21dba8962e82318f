package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunDefaultsAndFlags: the safe defaults as a process inside sees
// them (seccomp filtering, no_new_privs, the default capability set, a
// read-only /proc/sys, masked paths), what --privileged lifts, and the
// run flags TestRun does not look at from inside: --cap-add, --cpus,
// --env-file, --tmpfs, --mount (bind and tmpfs) and --platform.
func TestRunDefaultsAndFlags(t *testing.T) {
	c := runCLI(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("# a comment\nFROM_FILE=yes\n\nOTHER=two words\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Capabilities as the ecosystem's default set: no CAP_SYS_ADMIN (21),
	// CAP_NET_ADMIN (12) or CAP_SYS_MODULE (16); CAP_CHOWN (0) and
	// CAP_NET_BIND_SERVICE (10) kept.
	const capsOf = `caps=$(grep CapEff /proc/self/status | cut -f2); for b in 0 10 12 16 21; do if [ $(( 0x$caps >> $b & 1 )) = 1 ]; then echo -n "+$b"; else echo -n "-$b"; fi; done; echo`
	inside := []struct {
		name  string
		flags []string
		cmd   string
		want  string
	}{
		{"seccomp and no_new_privs", nil, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'", "NoNewPrivs:1\nSeccomp:2\n"},
		{"default capabilities", nil, capsOf, "+0+10-12-16-21\n"},
		{"cap-add", []string{"--cap-add", "NET_ADMIN"}, capsOf, "+0+10+12-16-21\n"},
		{"cap-drop one", []string{"--cap-drop", "CHOWN"}, capsOf, "-0+10-12-16-21\n"},
		{"/proc/sys read-only", nil, "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo refused", "refused\n"},
		{"masked /proc/timer_list", nil, "wc -c < /proc/timer_list", "0\n"}, // the host's has its timers
		{"privileged", []string{"--privileged"}, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'; " + capsOf, "NoNewPrivs:0\nSeccomp:0\n+0+10+12+16+21\n"},
		{"cpus", []string{"--cpus", "0.5"}, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max", "50000\n100000\n"},
		{"env-file", []string{"--env-file", envFile, "-e", "OTHER=flag wins"}, "echo $FROM_FILE; echo $OTHER", "yes\nflag wins\n"},
		{"tmpfs", []string{"--read-only", "--tmpfs", "/scratch"}, "echo x > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts | cut -d' ' -f3", "x\ntmpfs\n"},
		{"mount bind", []string{"--mount", "type=bind,source=" + dir + ",target=/m,readonly"}, "cat /m/f; touch /m/g 2>/dev/null || echo ro", "bound\nro\n"},
		{"mount tmpfs", []string{"--mount", "type=tmpfs,target=/t"}, "grep ' /t ' /proc/mounts | cut -d' ' -f3", "tmpfs\n"},
		{"platform of the host", []string{"--platform", "linux/amd64"}, "echo ran", "ran\n"},
	}
	for _, tc := range inside {
		args := append(append([]string{"run", "--rm", "--network", "none"}, tc.flags...), busybox, "sh", "-c", tc.cmd)
		if r := c.run(args...); r.code != 0 || r.stdout != tc.want {
			t.Errorf("%s: run %v: exit %d, stdout %q, stderr %q; want %q", tc.name, tc.flags, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"platform the image lacks", []string{"--pull", "never", "--platform", "linux/s390x"}, "linux/s390x"},
		{"platform unparsable", []string{"--platform", "linux/"}, "--platform"},
		{"env-file missing", []string{"--env-file", filepath.Join(dir, "nosuch")}, filepath.Join(dir, "nosuch")},
		{"cpus negative", []string{"--cpus", "-1"}, "cpus"},
		{"mount without target", []string{"--mount", "type=bind,source=" + dir}, "target"},
		{"tmpfs relative", []string{"--tmpfs", "scratch"}, "scratch"},
	}
	for _, tc := range bad {
		args := append(append([]string{"run", "--rm", "--network", "none"}, tc.args...), busybox, "true")
		r := c.run(args...)
		if r.code != 125 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: run %v: exit %d, stderr %q; want 125 and one line naming %q", tc.name, tc.args, r.code, r.stderr, tc.want)
		}
	}
}
