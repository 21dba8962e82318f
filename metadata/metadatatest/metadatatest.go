// Package metadatatest holds the conformance suites of the metadata stores
// (containers, images, leases, namespaces) and of garbage collection. The embedded
// database runs them now; the gRPC client against a daemon runs the same
// suites later with another Open.
package metadatatest

import (
	"context"
	"testing"
	"time"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/namespaces"
)

// Setup is one metadata implementation under test. Its GC must remove an
// unleased, idle ingest at once (no grace period) so the suite can see it.
type Setup struct {
	Content    content.Store
	Images     images.Store
	Leases     leases.Manager
	Namespaces namespaces.Store
	Containers containers.Store
	GC         func(ctx context.Context, dryRun bool) (gc.Stats, error)
}

// Open returns a fresh, empty implementation and registers its cleanup.
type Open func(t *testing.T) Setup

type test struct {
	name string
	fn   func(context.Context, *testing.T, Setup)
}

func run(t *testing.T, open Open, tests []test) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "testing"), 2*time.Minute)
			defer cancel()
			tc.fn(ctx, t, s)
		})
	}
}
