package testutil

import (
	"fmt"
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

// CtrClient is one of the real ctr binaries that tests drive against
// stratad.
type CtrClient struct {
	Name string
	Bin  func(tb testing.TB) string
}

// CtrClients are Debian's ctr (containerd 1.6, package containerd, on
// PATH) and containerd 2.4's (Tool); a missing one fails the test.
func CtrClients() []CtrClient {
	return []CtrClient{
		{"ctr1.6", func(tb testing.TB) string {
			tb.Helper()
			bin, err := exec.LookPath("ctr")
			if err != nil {
				tb.Fatalf("Debian's ctr (containerd 1.6, package containerd) is not installed: %v", err)
			}
			return bin
		}},
		{"ctr2.4", func(tb testing.TB) string { return Tool(tb, "ctr", "v2.4.2") }},
	}
}

// RunWithStratad is the TestMain of suites that run stratad as a
// process: it builds cmd/stratad of the module at root into a temporary
// directory once for the run, or takes $STRATA_TEST_STRATAD (another
// build, to run the suite against), sets *bin, runs m and returns its
// exit code.
func RunWithStratad(m *testing.M, root string, bin *string) int {
	if b := os.Getenv("STRATA_TEST_STRATAD"); b != "" {
		*bin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "stratad-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "stratad")
	// From the repository's own module: what `make build` builds.
	build := exec.Command("go", "build", "-o", *bin, "./cmd/stratad")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build stratad:", err)
		return 1
	}
	return m.Run()
}
