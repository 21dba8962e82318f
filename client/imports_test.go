package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerImports keeps the client a client: a program that talks to
// stratad must not link the daemon's services. It lists what the client
// package (without its tests, which start a real server) depends on.
func TestNoServerImports(t *testing.T) {
	const module = "github.com/strata-oci/strata/"
	forbidden := []string{module + "server", module + "services"}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"client").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps client: %v\n%s", err, stderr)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("client depends on %s (a daemon package)", dep)
			}
		}
	}
}
