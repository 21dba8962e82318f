package pull

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-oci/strata/content"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/wiring"
)

// Unpack unpacks the image manifest (whose blobs are in the store) into
// snapshotter ("" for the default), as a pull does but from the content
// store: what is unpacked already is kept, the rest applied (in parallel
// on overlayfs), verified and committed under its chain ID; the config
// gets the GC label for the top snapshot. It returns the top chain ID. A
// missing layer blob is errdefs.ErrNotFound naming it.
func Unpack(ctx context.Context, st *wiring.Store, manifest ocispec.Descriptor, snapshotter string, sink progress.Sink) (digest.Digest, error) {
	return UnpackWith(ctx, st, manifest, Options{Snapshotter: snapshotter, Progress: sink})
}

// UnpackWith is Unpack with the options of a pull that matter to it:
// Snapshotter, UnpackParallelism and Progress.
func UnpackWith(ctx context.Context, st *wiring.Store, manifest ocispec.Descriptor, o Options) (digest.Digest, error) {
	sink := o.Progress
	if sink == nil {
		sink = nopSink{}
	}
	pl := &pull{Puller: &Puller{store: st}, o: Options{Snapshotter: o.Snapshotter, UnpackParallelism: o.UnpackParallelism}, sink: sink,
		log: slog.New(slog.DiscardHandler), cs: st.DB.ContentStore()}
	lm := st.DB.Leases()
	var err error
	pl.lease, err = lm.Create(ctx, leases.WithExpiration(time.Hour), leases.WithLabels(map[string]string{lbl.LeaseUnpack: manifest.Digest.String()}))
	if err != nil {
		return "", err
	}
	defer lm.Delete(context.WithoutCancel(ctx), pl.lease)
	ctx = leases.WithLease(ctx, pl.lease.ID)
	pn, err := pl.planManifest(ctx, manifest)
	if err != nil {
		return "", err
	}
	if len(pn.chains) == 0 {
		return "", fmt.Errorf("manifest %s has no layers to unpack: %w", manifest.Digest, errdefs.ErrInvalidArgument)
	}
	for _, l := range pn.layers {
		if _, err := pl.cs.Info(ctx, l.Digest); err != nil {
			return "", fmt.Errorf("layer %s of manifest %s is not in the content store (pull the image again for this platform): %w", l.Digest, manifest.Digest, errdefs.ErrNotFound)
		}
	}
	sem := make(chan struct{}, 1)
	unsem := make(chan struct{}, unpackWorkers(pl.o))
	if pn.rebase {
		g, gctx := errgroup.WithContext(ctx)
		for i := range pn.layers {
			g.Go(func() error { return pl.unpackLayer(gctx, pn, i, sem, unsem) })
		}
		err = g.Wait()
	} else {
		for i := range pn.layers {
			if err = pl.unpackLayer(ctx, pn, i, sem, unsem); err != nil {
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	key := lbl.GCRefSnapshotPrefix + pn.snName
	top := pn.chains[len(pn.chains)-1]
	if _, err := pl.cs.Update(ctx, content.Info{Digest: pn.config.Digest, Labels: map[string]string{key: top.String()}}, "labels."+key); err != nil {
		return "", err
	}
	return top, nil
}
