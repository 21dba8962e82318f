package unpack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-oci/strata/content"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/snapshots"
)

// Store is what Manifest unpacks with: *wiring.Store, or client.Store
// over the daemon's socket.
type Store interface {
	Content() content.Store
	Leases() leases.Holder
	// ResolveSnapshotter returns the snapshotter name ("" for the
	// default) and the name it resolved to.
	ResolveSnapshotter(name string) (string, snapshots.Snapshotter, error)
}

// Options configure Manifest.
type Options struct {
	// Snapshotter to unpack into; "" for the store's default.
	Snapshotter string
	// Parallelism bounds the layers applied at once (default: the number
	// of CPUs, at least 2).
	Parallelism int
	Progress    progress.Sink
	Logger      *slog.Logger
}

// Workers is the number of layers applied from the content store at once
// for a Parallelism option: n when positive, else the number of CPUs, at
// least 2. Applies use CPU rather than the network.
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return max(2, runtime.NumCPU())
}

// Manifest unpacks the image manifest md, whose blobs are in the store,
// as a pull does but from the content store: what is unpacked already is
// kept, the rest applied (at once where the snapshotter can rebase),
// verified and committed under its chain ID; the config gets the GC label
// for the top snapshot. It returns the top chain ID. A manifest without
// layers is errdefs.ErrInvalidArgument; a missing layer blob is
// errdefs.ErrNotFound naming it.
func Manifest(ctx context.Context, st Store, md ocispec.Descriptor, o Options) (digest.Digest, error) {
	sink := o.Progress
	if sink == nil {
		sink = progress.Discard
	}
	name, sn, err := st.ResolveSnapshotter(o.Snapshotter)
	if err != nil {
		return "", err
	}
	cs, lm := st.Content(), st.Leases()
	lease, err := lm.Create(ctx, leases.WithExpiration(time.Hour), leases.WithLabels(map[string]string{lbl.LeaseUnpack: md.Digest.String()}))
	if err != nil {
		return "", err
	}
	defer lm.Delete(context.WithoutCancel(ctx), lease)
	ctx = leases.WithLease(ctx, lease.ID)
	pn, err := NewPlan(ctx, cs, md, name, sn, o.Logger)
	if err != nil {
		return "", err
	}
	if len(pn.Chains) == 0 {
		return "", fmt.Errorf("manifest %s has no layers to unpack: %w", md.Digest, errdefs.ErrInvalidArgument)
	}
	for _, l := range pn.Layers {
		if _, err := cs.Info(ctx, l.Digest); err != nil {
			return "", fmt.Errorf("layer %s of manifest %s is not in the content store (pull the image again for this platform): %w", l.Digest, md.Digest, errdefs.ErrNotFound)
		}
	}
	u := &fromStore{cs: cs, lm: lm, lease: lease, pn: pn, sink: sink, sem: make(chan struct{}, Workers(o.Parallelism))}
	if pn.Rebase {
		g, gctx := errgroup.WithContext(ctx)
		for i := range pn.Layers {
			g.Go(func() error { return u.layer(gctx, i) })
		}
		err = g.Wait()
	} else {
		for i := range pn.Layers {
			if err = u.layer(ctx, i); err != nil {
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	if err := pn.Label(ctx, cs); err != nil {
		return "", err
	}
	return pn.Top(), nil
}

// fromStore unpacks a plan's layers from the content store.
type fromStore struct {
	cs    content.Store
	lm    leases.Holder
	lease leases.Lease
	pn    *Plan
	sink  progress.Sink
	sem   chan struct{}
}

// hold holds blob d under the unpack's lease if it is there
// (errdefs.ErrNotFound otherwise): applied from a blob that a collection
// then removes, the layer would be in the snapshot, not the store.
func (u *fromStore) hold(ctx context.Context, d digest.Digest) error {
	return u.lm.HoldExisting(ctx, u.lease, leases.Resource{ID: d.String(), Type: "content"})
}

// layer makes chain snapshot i exist, committed on chain i-1.
func (u *fromStore) layer(ctx context.Context, i int) error {
	pn := u.pn
	l := pn.Layers[i]
	// Checked and held in one step, as blobs are.
	err := u.lm.HoldExisting(ctx, u.lease, leases.Resource{ID: pn.Chains[i].String(), Type: "snapshots/" + pn.Snapshotter})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if err == nil {
		pn.Committed(i)
		if err := u.hold(ctx, l.Digest); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("layer %s is not in the content store: %w", l.Digest, errdefs.ErrNotFound)
			}
			return err
		}
		u.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Exists, Current: l.Size, Total: l.Size})
		return nil
	}
	err = pn.Layer(ctx, i, func(ctx context.Context, apply func(io.Reader) error) error {
		if err := u.hold(ctx, l.Digest); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("layer %s is not in the content store: %w", l.Digest, errdefs.ErrNotFound)
			}
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if err := ApplyBlob(ctx, u.cs, l, u.sem, u.sink, apply); err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	pn.Committed(i)
	u.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Done, Current: l.Size, Total: l.Size})
	return nil
}

// ApplyBlob feeds layer l from the content store (which must hold it) to
// apply, reporting progress as it goes; sem bounds the applies running at
// once.
func ApplyBlob(ctx context.Context, p content.Provider, l ocispec.Descriptor, sem chan struct{}, sink progress.Sink, apply func(io.Reader) error) error {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sem }()
	ra, err := p.ReaderAt(ctx, l)
	if err != nil {
		return err
	}
	defer ra.Close()
	sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Unpacking, Total: l.Size})
	return apply(&progress.Counter{R: content.NewReader(ra), ID: l.Digest.String(), Total: l.Size, Sink: sink, Status: progress.Unpacking})
}
