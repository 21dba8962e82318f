package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// toolBuilds names the scripts/testtools.sh build of the tools that are
// not built alone.
var toolBuilds = map[string]string{"buildkitd": "buildkit", "buildctl": "buildkit"}

// Tool returns the path of a client tool the tests drive that Debian does
// not package at the version tested against (scripts/testtools.sh names
// them: ctr v2.4.2, crictl and critest v1.37.0, buildkitd and buildctl
// v0.35.0), cached outside the clone in $STRATA_TEST_TOOLS (default
// /var/cache/strata-test)/<build>-<version>/, where build is the tool's
// name or, for the commands built together from one module, the module's
// (buildkit).
// A tool that is missing is built there by scripts/testtools.sh (make deps
// does it beforehand); a build that fails fails the test, naming the tool.
func Tool(tb testing.TB, tool, version string) string {
	tb.Helper()
	cache := os.Getenv("STRATA_TEST_TOOLS")
	if cache == "" {
		cache = "/var/cache/strata-test"
	}
	build := tool
	if b, ok := toolBuilds[tool]; ok {
		build = b
	}
	bin := filepath.Join(cache, build+"-"+version, tool)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatalf("%s %s is not in %s and scripts/testtools.sh cannot be found", tool, version, cache)
	}
	script := filepath.Join(filepath.Dir(here), "..", "..", "scripts", "testtools.sh")
	if out, err := exec.Command(script, build).CombinedOutput(); err != nil {
		tb.Fatalf("build %s %s (scripts/testtools.sh %s): %v\n%s", tool, version, build, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("%s %s: scripts/testtools.sh built no %s: %v", tool, version, bin, err)
	}
	return bin
}
