// Package gc is the mark phase of garbage collection, over an abstract graph:
// nodes named by type, namespace and key, roots, and a function giving each
// node's references. It knows nothing of bbolt or files; the metadata package
// builds the graph from its buckets and does the sweeping.
package gc

import (
	"context"
	"time"
)

// ResourceType is the kind of a node.
type ResourceType uint8

// The kinds of node the metadata store collects.
const (
	ResourceContent ResourceType = iota + 1
	ResourceIngest
	ResourceSnapshot
	ResourceImage
	ResourceLease
	ResourceContainer
)

// String names the type as the CLI and logs show it.
func (t ResourceType) String() string {
	switch t {
	case ResourceContent:
		return "content"
	case ResourceIngest:
		return "ingest"
	case ResourceSnapshot:
		return "snapshot"
	case ResourceImage:
		return "image"
	case ResourceLease:
		return "lease"
	case ResourceContainer:
		return "container"
	}
	return "unknown"
}

// Node is one collectable object. Snapshots are keyed "<snapshotter>/<key>".
type Node struct {
	Type      ResourceType
	Namespace string
	Key       string
}

// Tricolor marks every node reachable from roots through refs and returns the
// reachable set. refs is called once per reachable node.
func Tricolor(ctx context.Context, roots []Node, refs func(Node, func(Node)) error) (map[Node]struct{}, error) {
	seen := make(map[Node]struct{}, len(roots))
	grey := make([]Node, 0, len(roots))
	for _, r := range roots {
		if _, ok := seen[r]; !ok {
			seen[r] = struct{}{}
			grey = append(grey, r)
		}
	}
	visit := func(n Node) {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			grey = append(grey, n)
		}
	}
	for i := 0; len(grey) > 0; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		n := grey[len(grey)-1]
		grey = grey[:len(grey)-1]
		if err := refs(n, visit); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// Stats reports what one collection removed (or, in a dry run, would remove).
type Stats struct {
	ContentRemoved   int           `json:"content_removed"`
	IngestsRemoved   int           `json:"ingests_removed"`
	LeasesRemoved    int           `json:"leases_removed"`
	SnapshotsRemoved int           `json:"snapshots_removed"`
	BlobsRemoved     int           `json:"blobs_removed"`
	BytesFreed       int64         `json:"bytes_freed"`
	Duration         time.Duration `json:"duration_ns"`
	DryRun           bool          `json:"dry_run"`
	// IngestsKept and IngestBytesKept are the partial downloads (and
	// other ingests) left after the collection and the bytes they hold.
	IngestsKept     int   `json:"ingests_kept"`
	IngestBytesKept int64 `json:"ingest_bytes_kept"`
	// Removed lists each removed object as "<type> <namespace>/<key>" or
	// "blob <digest>", when asked for.
	Removed []string `json:"removed,omitempty"`
}

// Objects is the number of objects removed.
func (s Stats) Objects() int {
	return s.ContentRemoved + s.IngestsRemoved + s.LeasesRemoved + s.SnapshotsRemoved + s.BlobsRemoved
}
