package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `make demo`'s script, as the README tells a new user to,
// with this test binary standing in for bin/strata.
func TestDemo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "strata")
	script := "#!/bin/sh\nSTRATA_TEST_MAIN=1 exec " + exe + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "../../scripts/demo.sh", wrapper)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"$ strata pull", "$ strata images ls", "hello from layer 2", "$ strata du", "demo done"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), "strata-demo.") {
		t.Fatal("the demo left a mount behind")
	}
}
