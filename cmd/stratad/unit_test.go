package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitPath = "../../packaging/stratad.service"

// readUnit returns the [Service] settings of a unit file, by key, in order.
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", path, line)
			}
			out[k] = append(out[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnit holds the settings that keep containers alive across a
// restart of the daemon (containerd's unit has the first two): systemd
// must signal stratad alone, never the shims of its cgroup; it must leave
// the cgroup subtree the shims and runc create to them; and a stop must
// not delete the runtime directory that holds the live shims' sockets and
// bundles. stratad tells systemd when it serves (sd_notify, TestNotify).
func TestSystemdUnit(t *testing.T) {
	unit := readUnit(t, unitPath)
	for key, want := range map[string]string{
		"KillMode":                 "process",
		"Delegate":                 "yes",
		"Type":                     "notify",
		"RuntimeDirectory":         "strata",
		"RuntimeDirectoryPreserve": "yes",
		"ExecStart":                "/usr/local/bin/stratad", // where make install puts it
	} {
		if got := unit[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s=%q, want %q", unitPath, key, got, want)
		}
	}
}

// TestSystemdUnitVerifies runs systemd's own checker on the unit (with
// ExecStart pointing at an executable that exists here): no unknown or
// misspelt setting, no value systemd would ignore. systemd-analyze works
// without systemd running (this machine's PID 1 is not systemd).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package): the unit's syntax is not verified; TestSystemdUnit still checks its settings")
	}
	body, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.ReplaceAll(body, []byte("ExecStart=/usr/local/bin/stratad"), []byte("ExecStart="+exe))
	path := filepath.Join(t.TempDir(), "stratad.service")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on settings it ignores: anything it prints is a fault.
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}

	// The check is not blind: a misspelt setting is reported.
	bad := bytes.Replace(body, []byte("\nKillMode=process\n"), []byte("\nKillMode=proces\n"), 1)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", path).CombinedOutput(); !bytes.Contains(out, []byte("kill mode")) {
		t.Fatalf("systemd-analyze verify of KillMode=proces printed %q; want a complaint about the kill mode", out)
	}
}
