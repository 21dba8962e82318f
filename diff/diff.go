// Package diff turns layers into snapshot contents and back: Apply unpacks
// a layer into an active snapshot's mounts, WriteLayer writes the changes
// of a snapshot over its parent into the content store as an OCI layer.
//
// Both take the fast path on overlayfs: a layer is applied straight into the
// upper directory and read back from it, without mounting anything.
package diff

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/content"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/snapshots"
)

// Target is where a layer goes for the mounts of an active snapshot.
type Target struct {
	// Dir is the overlay upper directory, or the source of the single
	// read-write bind mount.
	Dir string
	// Overlay says Dir is an overlay upper directory; Lowers are then the
	// layers below it, newest first.
	Overlay bool
	Lowers  []string
	// XattrPrefix is where overlayfs reads its attributes: "user.overlay."
	// under userxattr, else "trusted.overlay.".
	XattrPrefix string
}

// WritableTarget finds the directory that an active snapshot's mounts write
// into, as containerd's overlay applier does (core/diff/apply), so a layer
// is applied without mounting anything. It returns
// errdefs.ErrFailedPrecondition for read-only mounts (views, committed
// snapshots) and errdefs.ErrNotImplemented for mounts it does not know.
func WritableTarget(mounts []mount.Mount) (Target, error) {
	if len(mounts) != 1 {
		return Target{}, fmt.Errorf("%d mounts, want 1: %w", len(mounts), errdefs.ErrNotImplemented)
	}
	m := mounts[0]
	t := Target{XattrPrefix: "trusted.overlay."}
	for _, o := range m.Options {
		switch {
		case o == "ro":
			return Target{}, fmt.Errorf("read-only %s mount: %w", m.Type, errdefs.ErrFailedPrecondition)
		case o == "userxattr":
			t.XattrPrefix = "user.overlay."
		case strings.HasPrefix(o, "upperdir="):
			t.Dir = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "lowerdir="):
			t.Lowers = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
		}
	}
	switch m.Type {
	case "overlay":
		if t.Dir == "" {
			return Target{}, fmt.Errorf("overlay mount without upperdir: %w", errdefs.ErrFailedPrecondition)
		}
		t.Overlay = true
		return t, nil
	case "bind", "rbind":
		t.Dir, t.Lowers = m.Source, nil
		return t, nil
	}
	return Target{}, fmt.Errorf("%s mount: %w", m.Type, errdefs.ErrNotImplemented)
}

// ApplyOpt changes how Apply applies a layer.
type ApplyOpt func(*archive.ApplyOptions)

// WithDeferredLowerLinks is for a layer applied (archive.WhiteoutOverlay)
// into a snapshot prepared without its parents, which are unpacked at the
// same time: hard links to their files are listed in
// ApplyResult.LowerLinks instead of failing, and the caller must make them
// with archive.LinkLowers once the parents are committed.
func WithDeferredLowerLinks() ApplyOpt {
	return func(o *archive.ApplyOptions) { o.DeferLowerLinks = true }
}

// Apply unpacks the layer r into the active snapshot whose mounts are
// given. Into an overlay upper directory whiteouts become overlay
// whiteouts, and hard links to the parents' files link copies of them;
// into a bind-mounted directory whiteouts are carried out with mode
// (archive.WhiteoutNative for a full copy of the parents,
// archive.WhiteoutOverlay for a layer directory that overlay will stack).
func Apply(ctx context.Context, mounts []mount.Mount, r io.Reader, mode archive.WhiteoutMode, aopts ...ApplyOpt) (archive.ApplyResult, error) {
	t, err := WritableTarget(mounts)
	if err != nil {
		return archive.ApplyResult{}, fmt.Errorf("apply layer: %w", err)
	}
	opts := archive.ApplyOptions{Whiteouts: mode, OverlayXattrPrefix: t.XattrPrefix}
	if t.Overlay {
		opts.Whiteouts = archive.WhiteoutOverlay
		opts.Parents = t.Lowers
	}
	for _, o := range aopts {
		o(&opts)
	}
	res, err := archive.Apply(ctx, t.Dir, r, opts)
	if err == nil && t.Overlay && len(t.Lowers) > 0 {
		// Directories the layer did not list were made with default
		// attributes in the upper directory, where they would hide the
		// lower directories' mode and owner.
		err = archive.InheritDirs(t.Dir, res.ImplicitDirs, t.Lowers, t.XattrPrefix)
	}
	return res, err
}

// Options configure WriteLayer.
type Options struct {
	Compression archive.Compression // archive.Gzip, archive.Zstd or archive.Uncompressed
	Ref         string              // ingest ref; generated when empty
	Labels      map[string]string   // more labels for the blob
}

// MediaType returns the OCI layer media type of a compression.
func MediaType(c archive.Compression) string {
	switch c {
	case archive.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case archive.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// WriteLayer writes the layer that turns lower into upper into cs, labelled
// with its diff ID, and returns its descriptor. When upper is an overlay
// upper directory, lower is not read (it may be nil); otherwise both are
// mounted read-only and compared (a nil lower is the empty tree).
func WriteLayer(ctx context.Context, cs content.Ingester, lower, upper []mount.Mount, opts Options) (ocispec.Descriptor, error) {
	ref := opts.Ref
	if ref == "" {
		var b [8]byte
		rand.Read(b[:])
		ref = "diff-" + hex.EncodeToString(b[:])
	}
	w, err := cs.Writer(ctx, content.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write layer: %w", err)
	}
	defer w.Close()
	var res archive.DiffResult
	if t, err := WritableTarget(upper); err == nil && t.Overlay {
		res, err = archive.WriteOverlayDiff(ctx, w, t.Dir, opts.Compression, t.XattrPrefix)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("write layer: %w", err)
		}
	} else {
		err := mount.WithTempMount(ctx, readOnly(upper), func(up string) error {
			if len(lower) == 0 {
				var err error
				res, err = archive.WriteDiff(ctx, w, "", up, opts.Compression)
				return err
			}
			return mount.WithTempMount(ctx, readOnly(lower), func(low string) error {
				var err error
				res, err = archive.WriteDiff(ctx, w, low, up, opts.Compression)
				return err
			})
		})
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("write layer: %w", err)
		}
	}
	labels := map[string]string{lbl.Uncompressed: res.DiffID.String()}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	st, err := w.Status()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	dgst := w.Digest()
	if err := w.Commit(ctx, st.Offset, dgst, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, fmt.Errorf("write layer: %w", err)
	}
	return ocispec.Descriptor{MediaType: MediaType(opts.Compression), Digest: dgst, Size: st.Offset}, nil
}

// readOnly returns mounts with "ro" added, for reading a snapshot safely.
func readOnly(mounts []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = append(append([]string(nil), m.Options...), "ro")
		out[i] = m
	}
	return out
}

// WriteSnapshotLayer writes the layer of the active (or view) snapshot key
// over its parent: the convenience that the CLI and the daemon's diff
// service use.
func WriteSnapshotLayer(ctx context.Context, sn snapshots.Snapshotter, key string, cs content.Ingester, opts Options) (ocispec.Descriptor, error) {
	info, err := sn.Stat(ctx, key)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	upper, err := sn.Mounts(ctx, key)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if t, err := WritableTarget(upper); (err == nil && t.Overlay) || info.Parent == "" {
		return WriteLayer(ctx, cs, nil, upper, opts)
	}
	viewKey := fmt.Sprintf("diff-lower-%s-%x", key, randomBytes())
	lower, err := sn.View(ctx, viewKey, info.Parent)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("view parent %q: %w", info.Parent, err)
	}
	defer sn.Remove(context.WithoutCancel(ctx), viewKey)
	return WriteLayer(ctx, cs, lower, upper, opts)
}

func randomBytes() []byte {
	var b [4]byte
	rand.Read(b[:])
	return b[:]
}
