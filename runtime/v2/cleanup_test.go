package v2

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

// TestShimDeleteHangs: a shim whose delete command never ends (a wedged
// runtime under it) does not hold the Create that cleans up after it, nor
// the task id, for ever: the command is bounded, as containerd bounds it
// (io.containerd.timeout.shim.cleanup), killed, and Create fails naming
// the task, with nothing left. The shim here is a script: the real one
// cannot be made to hang on delete, and a shim is any binary a container
// names.
func TestShimDeleteHangs(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "delete.pid")
	shim := filepath.Join(dir, "containerd-shim-wedged-v1")
	script := `#!/bin/sh
for a; do action=$a; done
case $action in
start) echo unix:///nonexistent/strata-wedged.sock ;;
delete) echo $$ > ` + pidFile + `; exec sleep 1000 ;;
esac
`
	if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	_, err := e.m.Create(ctx, CreateOpts{ID: "wedged", Runtime: "io.containerd.wedged.v1", RuntimePath: shim, Spec: testutil.TaskSpec(t, "true")})
	if err == nil || !strings.Contains(err.Error(), "wedged") {
		t.Fatalf("Create with a shim that cannot be reached = %v, want an error naming the task", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the shim's delete command did not run: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	e.checkClean(t)
	// The id is free again.
	if _, err := e.m.Create(ctx, CreateOpts{ID: "wedged", Runtime: "io.containerd.nosuch.v1", Spec: testutil.TaskSpec(t, "true")}); err == nil || strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Create of the id = %v, want the missing shim's error, not already exists", err)
	}
}
