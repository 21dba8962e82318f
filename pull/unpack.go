package pull

import (
	"context"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/unpack"
)

// Unpack unpacks the image manifest (whose blobs are in the store) into
// snapshotter ("" for the default): unpack.Manifest, kept for its callers.
func Unpack(ctx context.Context, st unpack.Store, manifest ocispec.Descriptor, snapshotter string, sink progress.Sink) (digest.Digest, error) {
	return unpack.Manifest(ctx, st, manifest, unpack.Options{Snapshotter: snapshotter, Progress: sink})
}

// UnpackWith is Unpack with the options of a pull that matter to it:
// Snapshotter, UnpackParallelism, Progress and Logger.
func UnpackWith(ctx context.Context, st unpack.Store, manifest ocispec.Descriptor, o Options) (digest.Digest, error) {
	return unpack.Manifest(ctx, st, manifest, unpack.Options{Snapshotter: o.Snapshotter, Parallelism: o.UnpackParallelism, Progress: o.Progress})
}
