package ocitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runc is Debian's runc, the runtime the real tests use.
const Runc = "/usr/sbin/runc"

// Run writes spec as the config.json of a bundle in a new temporary
// directory and runs it in the foreground with `runc run`, returning its
// standard output and exit status (stderr goes to the test log). The runc
// state, the container's cgroups and the cgroup parent named by ownParent
// (a directory the test made up, e.g. "/strata-test-<n>") are removed when
// the test ends, whether it passed or not; a cgroup left behind after that
// fails the test.
func Run(tb testing.TB, spec *specs.Spec, id, ownParent string) (string, int) {
	tb.Helper()
	if _, err := os.Stat(Runc); err != nil {
		tb.Fatalf("%s: %v (install Debian's runc)", Runc, err)
	}
	bundle := tb.TempDir()
	state := tb.TempDir()
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// runc run deletes a container that exited; this is for the one a
		// failed test left running or created.
		if out, err := exec.Command(Runc, "--root", state, "delete", "--force", id).CombinedOutput(); err != nil &&
			!bytes.Contains(out, []byte("does not exist")) {
			tb.Logf("runc delete %s: %v: %s", id, err, out)
		}
		removeCgroups(tb, spec.Linux.CgroupsPath, ownParent)
	})
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(Runc, "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if stderr.Len() > 0 {
		tb.Logf("runc run %s stderr:\n%s", id, stderr.String())
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), exit.ExitCode()
	case err != nil:
		tb.Fatalf("runc run %s: %v", id, err)
	}
	return stdout.String(), 0
}

// removeCgroups removes cgroupsPath and ownParent (and what lies between)
// in every cgroup hierarchy mounted, and fails the test if one stays.
func removeCgroups(tb testing.TB, cgroupsPath, ownParent string) {
	tb.Helper()
	if cgroupsPath == "" || ownParent == "" || !strings.HasPrefix(cgroupsPath, ownParent+"/") {
		tb.Errorf("cgroups path %q is not below the test's own parent %q: not removing it", cgroupsPath, ownParent)
		return
	}
	for _, mnt := range CgroupMounts(tb) {
		for p := cgroupsPath; strings.HasPrefix(p+"/", ownParent+"/"); p = path.Dir(p) {
			dir := filepath.Join(mnt, p)
			if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
				tb.Errorf("cgroup %s left behind: %v", dir, err)
			}
		}
	}
}

// CgroupMounts lists the mount points of cgroup (v1 and v2) hierarchies.
func CgroupMounts(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional…] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, fstype := strings.Fields(pre), strings.Fields(post)
		if len(fields) >= 5 && len(fstype) > 0 && (fstype[0] == "cgroup" || fstype[0] == "cgroup2") {
			out = append(out, fields[4])
		}
	}
	return out
}
