package server_test

import (
	"context"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-oci/strata/server/servertest"
)

// TestHealth: containerd's client and test harness wait on gRPC's health
// service before anything else.
func TestHealth(t *testing.T) {
	d := servertest.Start(t)
	resp, err := healthpb.NewHealthClient(d.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check = %v, %v; want SERVING", resp, err)
	}
}
