package server_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-oci/strata/server/servertest"
)

func TestMetrics(t *testing.T) {
	d := servertest.Start(t)
	d.Ctr(t, "default", "version")
	d.CtrResult("default", "images", "rm", "nothing-here") // a NotFound
	rec := httptest.NewRecorder()
	d.Server.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	out := string(b)
	for _, want := range []string{
		`strata_grpc_requests_total{method="/containerd.services.version.v1.Version/Version",code="OK"} 1`,
		`strata_grpc_requests_total{method="/containerd.services.images.v1.Images/Delete",code="NotFound"} 1`,
		`strata_build_info{version="test",revision=""} 1`,
		"# TYPE strata_uptime_seconds gauge",
		"go_goroutines ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}
