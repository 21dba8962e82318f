// Package contenttest is the conformance suite every content.Store passes:
// the local blob store, the namespaced metadata store, and (later) the gRPC
// client against a running daemon.
package contenttest

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/namespaces"
)

// Setup is one store under test and what it claims to support.
type Setup struct {
	Store content.Store
	// Labels is true when the store keeps labels (Update, Info.Labels).
	Labels bool
	// Namespaced is true when each namespace has its own view of blobs.
	Namespaced bool
}

// Run runs the suite; open returns a fresh, empty store for each test and
// registers its cleanup with t.
func Run(t *testing.T, open func(t *testing.T) Setup) {
	tests := []struct {
		name string
		fn   func(context.Context, *testing.T, Setup)
		need func(Setup) bool
	}{
		{name: "WriteReadCommit", fn: testWriteRead},
		{name: "EmptyBlob", fn: testEmptyBlob},
		{name: "Resume", fn: testResume},
		{name: "StatusFields", fn: testStatus},
		{name: "WriteBlobRecoversBadPrefix", fn: testWriteBlobBadPrefix},
		{name: "RefLocked", fn: testLocked},
		{name: "RefHeldThroughCommit", fn: testRefHeldThroughCommit},
		{name: "DigestMismatch", fn: testDigestMismatch},
		{name: "SizeMismatch", fn: testSizeMismatch},
		{name: "WriterOnExisting", fn: testWriterOnExisting},
		{name: "ConcurrentCommitSameDigest", fn: testConcurrentSame},
		{name: "Truncate", fn: testTruncate},
		{name: "Abort", fn: testAbort},
		{name: "Delete", fn: testDelete},
		{name: "WalkFilters", fn: testWalk},
		{name: "ListStatusesFilter", fn: testListStatuses},
		{name: "BadInput", fn: testBadInput},
		{name: "Labels", fn: testLabels, need: func(s Setup) bool { return s.Labels }},
		{name: "NamespaceVisibility", fn: testNamespaces, need: func(s Setup) bool { return s.Namespaced }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if tc.need != nil && !tc.need(s) {
				// Declared by the implementation, not skipped silently:
				// the test name says what it lacks.
				t.Logf("store does not claim %s", tc.name)
				return
			}
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "testing"), 2*time.Minute)
			defer cancel()
			tc.fn(ctx, t, s)
		})
	}
}

// Blob returns n seeded pseudo-random bytes and their descriptor.
func Blob(seed int64, n int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(n)}
}

func mustWrite(ctx context.Context, t *testing.T, s content.Store, ref string, data []byte, desc ocispec.Descriptor, opts ...content.Opt) {
	t.Helper()
	if err := content.WriteBlob(ctx, s, ref, bytes.NewReader(data), desc, opts...); err != nil {
		t.Fatalf("WriteBlob(%q) = %v", ref, err)
	}
}

func readAll(ctx context.Context, t *testing.T, s content.Store, desc ocispec.Descriptor) []byte {
	t.Helper()
	b, err := content.ReadBlob(ctx, s, desc, 0)
	if err != nil {
		t.Fatalf("ReadBlob(%s) = %v", desc.Digest, err)
	}
	return b
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}
