package server_test

import (
	"strings"
	"testing"

	"github.com/strata-oci/strata/server/servertest"
)

func TestVersionWithCtr(t *testing.T) {
	d := servertest.Start(t)
	out := d.Ctr(t, "default", "version")
	if !strings.Contains(out, "Server:") || !strings.Contains(out, "Version:  test") {
		t.Fatalf("ctr version:\n%s", out)
	}
}
