package version_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/services/version"
)

func TestVersionWithCtr(t *testing.T) {
	d := servertest.Start(t)
	out := d.Ctr(t, "default", "version")
	if !strings.Contains(out, "Server:") || !strings.Contains(out, "Version:  "+version.ContainerdVersion+"+strata.test\n") {
		t.Fatalf("ctr version:\n%s", out)
	}
}

// semver is semver 2.0.0's grammar (semver.org), as nerdctl's parser
// (Masterminds/semver) accepts it, with an optional leading v.
var semver = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// TestReportedVersion: whatever strata's version looks like, the version
// service reports a semver of the containerd release served (clients
// compare it, and one that does not parse stops nerdctl), and strata's
// CLI gets strata's version back from it.
func TestReportedVersion(t *testing.T) {
	for _, v := range []string{"test", "v0.3.0", "v0.3.0-12-g94ec25d-dirty", "94ec25d", "(devel)", "1.0 beta/2", "a..b", "a...b.", "...", ""} {
		got := version.ReportedVersion(v)
		m := semver.FindStringSubmatch(got)
		if m == nil {
			t.Errorf("ReportedVersion(%q) = %q, not a semver", v, got)
			continue
		}
		if core := m[1] + "." + m[2] + "." + m[3]; core != version.ContainerdVersion || m[4] != "" {
			t.Errorf("ReportedVersion(%q) = %q, want version %s without pre-release", v, got, version.ContainerdVersion)
		}
		if strings.Trim(v, ".") != "" && !strings.Contains(version.StrataVersion(got), strings.Trim(v[:1], "(")) {
			t.Errorf("StrataVersion(%q) = %q, want strata's %q", got, version.StrataVersion(got), v)
		}
	}
	if got := version.StrataVersion("v0.3.0-12-g94ec25d-dirty"); got != "v0.3.0-12-g94ec25d-dirty" {
		t.Errorf("StrataVersion of a plain version = %q", got)
	}
}
