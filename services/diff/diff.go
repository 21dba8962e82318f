// Package diff serves containerd.services.diff.v1 over strata's layer
// apply and diff (package diff): layers from the content store onto
// snapshot mounts, and the changes between two mounts back as a layer.
package diff

import (
	"context"
	"fmt"
	"os"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/protoconv"
	"github.com/strata-oci/strata/server/peercred"
	"github.com/strata-oci/strata/unpack"
)

// Store is what the service needs of the content store: a layer's info
// and bytes for Apply, an ingest for the layer Diff writes.
type Store interface {
	content.Provider
	content.Ingester
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
}

// Service serves containerd.services.diff.v1: it applies layers from
// the content store onto snapshot mounts and writes the difference of two
// mounts back as a layer, in the caller's namespace.
//
// Like containerd's, it trusts its callers with the mounts they send: the
// socket is root's, and a peer that is not root is refused
// (errdefs.ErrPermissionDenied; server/peercred).
type Service struct {
	diffapi.UnimplementedDiffServer
	store Store
}

// New returns the service over the namespaced content store cs.
func New(cs Store) *Service { return &Service{store: cs} }

// Register serves the service on g.
func (ds *Service) Register(g *grpc.Server) { diffapi.RegisterDiffServer(g, ds) }

// Apply unpacks the layer req.Diff, read from the content store, onto the
// mounts of an active snapshot (an overlay upper directory or a bind
// mount), and returns the uncompressed layer's descriptor: its diff ID and
// size. A blob labelled with its diff ID (containerd.io/uncompressed) must
// match it: errdefs.ErrFailedPrecondition otherwise, and the snapshot is
// the caller's to remove. Unknown media types return
// errdefs.ErrNotImplemented, a missing blob errdefs.ErrNotFound.
func (ds *Service) Apply(ctx context.Context, req *diffapi.ApplyRequest) (*diffapi.ApplyResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	if req.Diff == nil {
		return nil, fmt.Errorf("apply: diff descriptor is required: %w", errdefs.ErrInvalidArgument)
	}
	desc, err := diffDescFromProto(req.Diff)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	if !images.IsLayer(desc.MediaType) {
		return nil, fmt.Errorf("apply layer %s: unsupported diff media type %q: %w", desc.Digest, desc.MediaType, errdefs.ErrNotImplemented)
	}
	if err := peercred.RequireRoot(ctx, "apply a layer onto mounts"); err != nil {
		return nil, err
	}
	mounts, err := protoconv.MountsFromProto(req.Mounts)
	if err != nil {
		return nil, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
	}
	cs := ds.store
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && desc.Size != info.Size {
		return nil, fmt.Errorf("apply layer %s: descriptor size %d, blob size %d: %w", desc.Digest, desc.Size, info.Size, errdefs.ErrFailedPrecondition)
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	// A bind mount is a full copy of the parents (native) or an overlay
	// layer without parents: carrying whiteouts out is right for both. We
	// do not advertise "rebase", so no client prepares a layer apart from
	// its parents and expects overlay whiteouts in a bind mount.
	res, err := diff.Apply(ctx, mounts, content.NewReader(ra), archive.WhiteoutNative)
	if err != nil {
		return nil, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
	}
	if want := info.Labels[labels.Uncompressed]; want != "" {
		if err := unpack.VerifyDiffID(desc, res.DiffID, digest.Digest(want)); err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
	}
	if req.SyncFs {
		if err := diffSyncTarget(mounts); err != nil {
			return nil, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
		}
	}
	return &diffapi.ApplyResponse{Applied: &types.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    res.DiffID.String(),
		Size:      res.Size,
	}}, nil
}

// diffSyncTarget flushes the filesystem a layer was applied to (ApplyRequest's
// sync_fs).
func diffSyncTarget(mounts []mount.Mount) error {
	t, err := diff.WritableTarget(mounts)
	if err != nil {
		return err
	}
	f, err := os.Open(t.Dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", t.Dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", t.Dir, err)
	}
	return nil
}

// Diff writes the changes from req.Left to req.Right into the content store
// as a layer of req.MediaType (OCI tar, tar+gzip (the default) or
// tar+zstd; others return errdefs.ErrNotImplemented), labelled with
// req.Labels and its diff ID, and returns its descriptor.
func (ds *Service) Diff(ctx context.Context, req *diffapi.DiffRequest) (*diffapi.DiffResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	mediaType := req.MediaType
	if mediaType == "" {
		mediaType = ocispec.MediaTypeImageLayerGzip
	}
	var comp archive.Compression
	switch mediaType {
	case ocispec.MediaTypeImageLayer:
		comp = archive.Uncompressed
	case ocispec.MediaTypeImageLayerGzip:
		comp = archive.Gzip
	case ocispec.MediaTypeImageLayerZstd:
		comp = archive.Zstd
	default:
		return nil, fmt.Errorf("diff: unsupported diff media type %q: %w", mediaType, errdefs.ErrNotImplemented)
	}
	if req.SourceDateEpoch != nil {
		return nil, fmt.Errorf("diff: source date epoch: %w", errdefs.ErrNotImplemented)
	}
	if len(req.Right) == 0 {
		return nil, fmt.Errorf("diff: right mounts are required: %w", errdefs.ErrInvalidArgument)
	}
	if err := peercred.RequireRoot(ctx, "diff mounts"); err != nil {
		return nil, err
	}
	lower, err := protoconv.MountsFromProto(req.Left)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	upper, err := protoconv.MountsFromProto(req.Right)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	desc, err := diff.WriteLayer(ctx, ds.store, lower, upper, diff.Options{Compression: comp, Ref: req.Ref, Labels: req.Labels})
	if err != nil {
		return nil, err
	}
	return &diffapi.DiffResponse{Diff: &types.Descriptor{
		MediaType: mediaType,
		Digest:    desc.Digest.String(),
		Size:      desc.Size,
	}}, nil
}

// diffDescFromProto converts a descriptor of a request; a malformed
// digest returns errdefs.ErrInvalidArgument.
func diffDescFromProto(d *types.Descriptor) (ocispec.Descriptor, error) {
	dgst, err := digest.Parse(d.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("digest %q: %w: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: dgst, Size: d.Size, Annotations: d.Annotations}, nil
}
