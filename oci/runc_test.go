package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-oci/strata/oci/ocitest"
)

// probe prints, from inside the container, what the spec should have set.
const probe = `
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t ' ' '
if touch /probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi
if echo strata 2>/dev/null >/proc/sys/kernel/hostname; then echo procsys=rw; else echo procsys=ro; fi
echo "timer_list=$(wc -c < /proc/timer_list)"
echo "hostname=$(hostname)"
echo "home=$HOME"
if [ -f /sys/fs/cgroup/pids.max ]; then
  echo "pids=$(cat /sys/fs/cgroup/pids.max) memory=$(cat /sys/fs/cgroup/memory.max)"
else
  echo "pids=$(cat /sys/fs/cgroup/pids/pids.max) memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  test -f /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes && echo "memory+swap=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)"
fi
`

// TestRunc runs specs from Generate with the real runc on a busybox rootfs
// and checks from inside the container that the user, capabilities,
// no_new_privileges, seccomp, read-only root, read-only /proc/sys, masked
// /proc/timer_list, pids and memory limits are what the options said.
func TestRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runc needs root to create namespaces and cgroups")
	}
	// Control for the masked path: the host's is not empty.
	if b, err := os.ReadFile("/proc/timer_list"); err != nil || len(b) == 0 {
		t.Fatalf("the host's /proc/timer_list is empty or unreadable (%v): the masking check would prove nothing", err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ocitest.BusyboxRootfs(t, rootfs)
	parent := fmt.Sprintf("/strata-oci-test-%d", os.Getpid())

	unlimitedPids := "max"
	tests := []struct {
		name string
		opts Options
		want []string
		swap string // on cgroup v1 with swap accounting
	}{
		{
			name: "restricted",
			opts: Options{User: "app", ReadOnly: true, CapDrop: []string{"ALL"}, PidsLimit: 20, Memory: 64 << 20, Hostname: "restricted"},
			want: []string{
				"uid=1000 gid=1000 groups=1000 50", "CapEff: 0000000000000000", "CapBnd: 0000000000000000",
				"NoNewPrivs: 1", "Seccomp: 2", "rootfs=ro", "procsys=ro", "timer_list=0", "hostname=restricted",
				"home=/home/app", fmt.Sprintf("pids=20 memory=%d", 64<<20),
			},
			swap: fmt.Sprintf("memory+swap=%d", 128<<20),
		},
		{
			name: "defaults",
			opts: Options{CapAdd: []string{"net_admin"}, CapDrop: []string{"MKNOD"}},
			want: []string{
				"uid=0 gid=0 groups=0",
				"CapEff: " + capMask(slices.DeleteFunc(append(slices.Clone(DefaultCapabilities), "CAP_NET_ADMIN"), func(c string) bool { return c == "CAP_MKNOD" })),
				"NoNewPrivs: 1", "Seccomp: 2", "rootfs=rw", "procsys=ro", "timer_list=0", "home=/root", "pids=" + unlimitedPids,
			},
		},
		{
			name: "privileged",
			opts: Options{Privileged: true},
			want: []string{
				"uid=0 gid=0 groups=0", "CapEff: " + capMask(AllCapabilities()), "NoNewPrivs: 0", "Seccomp: 0",
				"procsys=rw", "pids=" + unlimitedPids,
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.ID = fmt.Sprintf("strata-oci-test-%d-%d", os.Getpid(), i)
			tt.opts.Rootfs = rootfs
			tt.opts.CgroupParent = parent
			tt.opts.Args = []string{"sh", "-c", probe}
			spec, err := Generate(context.Background(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			out, status := ocitest.Run(t, spec, tt.opts.ID, parent)
			if status != 0 {
				t.Fatalf("runc run exited %d; output:\n%s", status, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if tt.swap != "" && swapAccounted() && !cgroup2() {
				tt.want = append(tt.want, tt.swap)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(lines, func(l string) bool { return l == w || strings.HasPrefix(l, w+" ") }) {
					t.Errorf("inside the container: no line %q in\n%s", w, out)
				}
			}
			if tt.opts.Privileged && slices.Contains(lines, "timer_list=0") {
				t.Errorf("privileged: /proc/timer_list is still masked")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(rootfs, "probe")); err != nil {
		t.Errorf("the writable container did not write its probe file into the rootfs: %v", err)
	}
}

// capMask is a capability set as /proc/<pid>/status prints it.
func capMask(caps []string) string {
	var m uint64
	for _, c := range caps {
		m |= 1 << slices.Index(capabilityNames, c)
	}
	return fmt.Sprintf("%016x", m)
}
