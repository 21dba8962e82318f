package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/progress"
	"github.com/strata-oci/strata/unpack"
)

// fetchLayers downloads the layers of the platforms asked for and unpacks
// the one platform to unpack, as the bytes arrive.
func (pl *pull) fetchLayers(ctx context.Context, root ocispec.Descriptor) error {
	var m images.PlatformMatcher = images.Any(pl.o.Platforms...)
	if pl.o.AllPlatforms {
		m = images.All()
	}
	var wanted []ocispec.Descriptor
	if images.IsManifest(root.MediaType) {
		wanted = []ocispec.Descriptor{root}
	} else {
		var err error
		if wanted, err = images.Manifests(ctx, pl.cs, root, m); err != nil {
			return err
		}
		if len(wanted) == 0 {
			_, _, err := images.Manifest(ctx, pl.cs, root, m)
			if err == nil {
				err = fmt.Errorf("%s: no manifest for %s: %w", pl.ref, m, errdefs.ErrNotFound)
			}
			return err
		}
	}

	// Every layer wanted, once, with its diff ID from its config.
	var layers []ocispec.Descriptor
	diffOf := map[digest.Digest]digest.Digest{}
	for _, md := range wanted {
		man, err := images.ReadManifest(ctx, pl.cs, md)
		if err != nil {
			return err
		}
		diffIDs, err := images.RootFS(ctx, pl.cs, man)
		if err != nil {
			return fmt.Errorf("image %s: %w", pl.ref, err)
		}
		for i, l := range man.Layers {
			if _, ok := diffOf[l.Digest]; !ok {
				layers = append(layers, l)
			}
			diffOf[l.Digest] = diffIDs[i]
		}
	}
	if pl.o.AllPlatforms && images.IsIndex(root.MediaType) {
		// Attestations (SBOMs, provenance) belong to "every platform" too:
		// without them the image could not be pushed or exported whole.
		att, err := pl.attestationLayers(ctx, root)
		if err != nil {
			return err
		}
		for _, l := range att {
			if _, ok := diffOf[l.Digest]; !ok {
				diffOf[l.Digest] = ""
				layers = append(layers, l)
			}
		}
	}

	var pn *unpack.Plan
	if !pl.o.NoUnpack {
		var err error
		if pn, err = pl.plan(ctx, root, wanted); err != nil {
			return err
		}
	}
	for _, l := range layers {
		pl.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Waiting, Total: l.Size})
	}

	sem := make(chan struct{}, pl.o.MaxConcurrentDownloads)
	unsem := make(chan struct{}, unpack.Workers(pl.o.UnpackParallelism))
	g, gctx := errgroup.WithContext(ctx)
	streamed := map[digest.Digest]bool{}
	if pn != nil && pn.Rebase {
		for i := range pn.Layers {
			streamed[pn.Layers[i].Digest] = true
			g.Go(func() error { return pl.unpackLayer(gctx, pn, i, sem, unsem) })
		}
	}
	for _, l := range layers {
		if streamed[l.Digest] {
			continue
		}
		g.Go(func() error { return pl.ensureBlob(gctx, l, pl.blobLabels(l, diffOf), sem) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if pn == nil {
		return nil
	}
	if !pn.Rebase {
		// Each snapshot is a copy of its parent: one after the other,
		// from the blobs now in the store.
		for i := range pn.Layers {
			if err := pl.unpackLayer(ctx, pn, i, sem, unsem); err != nil {
				return err
			}
		}
	}
	return pn.Label(ctx, pl.cs)
}

// attestationLayers lists the blobs of the attestation manifests of the
// index root (BuildKit marks them with vnd.docker.reference.type).
func (pl *pull) attestationLayers(ctx context.Context, root ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	idx, err := images.ReadIndex(ctx, pl.cs, root)
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if m.Annotations["vnd.docker.reference.type"] != "attestation-manifest" || !images.IsManifest(m.MediaType) {
			continue
		}
		man, err := images.ReadManifest(ctx, pl.cs, m)
		if err != nil {
			return nil, err
		}
		out = append(out, man.Layers...)
	}
	return out, nil
}

func (pl *pull) blobLabels(l ocispec.Descriptor, diffOf map[digest.Digest]digest.Digest) map[string]string {
	labels := map[string]string{pl.sourceKey: pl.sourceVal}
	if d := diffOf[l.Digest]; d != "" {
		labels[lbl.Uncompressed] = d.String()
	}
	return labels
}

// plan picks the manifest to unpack and reads what unpacking it needs.
func (pl *pull) plan(ctx context.Context, root ocispec.Descriptor, wanted []ocispec.Descriptor) (*unpack.Plan, error) {
	up := pl.o.Platforms[0]
	if pl.o.UnpackPlatform != nil {
		up = *pl.o.UnpackPlatform
	}
	md := root
	if !images.IsManifest(root.MediaType) {
		cands, err := images.Manifests(ctx, pl.cs, root, images.Only(up))
		if err != nil {
			return nil, err
		}
		found := false
		for _, c := range cands {
			for _, w := range wanted {
				if c.Digest == w.Digest {
					md, found = c, true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: cannot unpack %s: its layers are not being pulled (add --platform %s, or --no-unpack): %w",
				pl.ref, images.FormatPlatform(up), images.FormatPlatform(up), errdefs.ErrInvalidArgument)
		}
	}
	return pl.planManifest(ctx, md)
}

// planManifest reads what unpacking manifest md needs.
func (pl *pull) planManifest(ctx context.Context, md ocispec.Descriptor) (*unpack.Plan, error) {
	name, sn, err := pl.store.ResolveSnapshotter(pl.o.Snapshotter)
	if err != nil {
		return nil, err
	}
	return unpack.NewPlan(ctx, pl.cs, md, name, sn, pl.log)
}

// ensureBlob makes sure blob l is in the store: there already, downloaded
// by another pull (waited for), or downloaded now.
func (pl *pull) ensureBlob(ctx context.Context, l ocispec.Descriptor, labels map[string]string, sem chan struct{}) error {
	for {
		if err := pl.hold(ctx, l.Digest); err == nil {
			pl.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Exists, Current: l.Size, Total: l.Size})
			return nil
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		f, owner := pl.blobs.start(l.Digest.String())
		if !owner {
			if err := f.wait(ctx); err != nil {
				return err
			}
			continue
		}
		_, err := pl.download(ctx, l, labels, sem, nil)
		pl.blobs.finish(l.Digest.String(), f)
		if errors.Is(err, errRetry) {
			continue
		}
		if err == nil {
			pl.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Done, Current: l.Size, Total: l.Size})
		}
		return err
	}
}

// errRetry: someone else holds or finished the blob; look again.
var errRetry = errors.New("retry")

// download writes blob l into the store from the registry, resuming a
// partial ingest. With apply, the stream is also applied as it arrives
// (when the ingest starts from zero); it reports whether it was. A resumed
// ingest whose digest turns out wrong (bad bytes left by an earlier,
// killed pull) is aborted, and the blob fetched once more
// from the start; a fresh one fails.
func (pl *pull) download(ctx context.Context, l ocispec.Descriptor, labels map[string]string, sem chan struct{}, apply func(io.Reader) error) (applied bool, err error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-sem }()
	for attempt := 0; ; attempt++ {
		applied, resumed, err := pl.fetchBlob(ctx, l, labels, apply)
		var bad *badDataError
		if !errors.As(err, &bad) || !resumed || attempt > 0 {
			return applied, err
		}
		pl.log.Warn("a resumed download does not match its digest; fetching it again from the start", "digest", l.Digest, "error", err)
	}
}

// badDataError is a commit refused because the data is not the blob.
type badDataError struct{ err error }

func (e *badDataError) Error() string { return e.err.Error() }
func (e *badDataError) Unwrap() error { return e.err }

// fetchBlob is one attempt of download; resumed says whether it continued
// an ingest that had bytes already.
func (pl *pull) fetchBlob(ctx context.Context, l ocispec.Descriptor, labels map[string]string, apply func(io.Reader) error) (applied, resumed bool, err error) {
	ref := "pull-" + l.Digest.String()
	w, err := pl.cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(l))
	switch {
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return false, false, errRetry
	case errors.Is(err, errdefs.ErrUnavailable):
		// Another process is writing it: wait and look again.
		t := time.NewTimer(200 * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-t.C:
		}
		return false, false, errRetry
	case err != nil:
		return false, false, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	pl.noteIngest(ref)
	defer w.Close()
	if done, err := content.CommitIfComplete(ctx, w, l, content.WithLabels(labels)); err != nil {
		return false, false, fmt.Errorf("layer %s: %w", l.Digest, err)
	} else if done {
		return false, false, errRetry // another namespace's copy: held now
	}
	st, err := w.Status()
	if err != nil {
		return false, false, err
	}
	off := st.Offset
	// A complete ingest whose digest matched was committed above: one of
	// full length (or longer) here holds wrong bytes, and a Range from its
	// end would fetch nothing. Start over.
	if off >= l.Size {
		if err := w.Truncate(0); err != nil {
			return false, false, err
		}
		off = 0
	}
	if off > 0 {
		pl.log.Info("resuming a partial download", "digest", l.Digest, "offset", off)
		apply = nil
	}
	resumed = off > 0
	rc, err := pl.repo.OpenBlob(ctx, l, off)
	if err != nil {
		return false, resumed, err
	}
	defer rc.Close()
	src := &progress.Counter{R: rc, N: off, ID: l.Digest.String(), Total: l.Size, Sink: pl.sink, Status: progress.Downloading}
	var applyErr error
	if apply != nil {
		ahead := newPrefetch(io.TeeReader(src, w), 1<<20, 4)
		applyErr = apply(ahead)
		if applyErr != nil && ctx.Err() != nil {
			ahead.Close()
			return true, resumed, ctx.Err()
		}
		// What the apply left unread (the compressed trailer, or the rest
		// after a failure) still goes through the tee into the store.
		_, err := io.Copy(io.Discard, ahead)
		ahead.Close()
		if err != nil {
			if ctx.Err() != nil {
				return true, resumed, ctx.Err()
			}
			return true, resumed, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	// The rest of the stream (all of it without apply).
	if _, err := io.Copy(w, src); err != nil {
		if ctx.Err() != nil {
			return apply != nil, resumed, ctx.Err()
		}
		return apply != nil, resumed, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if err := w.Commit(ctx, l.Size, l.Digest, content.WithLabels(labels)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		// A digest mismatch explains any apply failure: report it.
		err = fmt.Errorf("layer %s from %s: %w", l.Digest, pl.ref.Name(), err)
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			// All of it, and wrong: resuming could only fail the same
			// way (issue 11, item 6). The store keeps such an ingest, as
			// containerd's does; the pull drops it.
			w.Close()
			if aerr := pl.cs.Abort(context.WithoutCancel(ctx), ref); aerr != nil && !errdefs.IsNotFound(aerr) {
				err = fmt.Errorf("%w (abort ingest: %w)", err, aerr)
			}
			err = &badDataError{err}
		}
		return apply != nil, resumed, err
	}
	if applyErr != nil {
		return true, resumed, fmt.Errorf("layer %s: %w", l.Digest, applyErr)
	}
	return apply != nil, resumed, nil
}

// unpackLayer makes chain snapshot i exist, committed on chain i-1.
func (pl *pull) unpackLayer(ctx context.Context, pn *unpack.Plan, i int, sem, unsem chan struct{}) error {
	l := pn.Layers[i]
	chain := pn.Chains[i].String()
	for {
		// Checked and held in one step, as blobs are (see hold).
		err := pl.store.Leases().HoldExisting(ctx, pl.lease, leases.Resource{ID: chain, Type: "snapshots/" + pn.Snapshotter})
		if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		if err == nil {
			pn.Committed(i)
			// The image needs its blob too.
			return pl.ensureBlob(ctx, l, pl.layerLabels(pn, i), sem)
		}
		f, owner := pl.layers.start(pn.Snapshotter + "/" + chain)
		if !owner {
			if err := f.wait(ctx); err != nil {
				return err
			}
			continue
		}
		err = pn.Layer(ctx, i, pl.feed(pn, i, sem, unsem))
		pl.layers.finish(pn.Snapshotter+"/"+chain, f)
		if err == nil {
			pn.Committed(i)
			pl.sink.Update(progress.Update{ID: l.Digest.String(), Kind: "layer", Status: progress.Done, Current: l.Size, Total: l.Size})
		}
		return err
	}
}

func (pl *pull) layerLabels(pn *unpack.Plan, i int) map[string]string {
	return map[string]string{pl.sourceKey: pl.sourceVal, lbl.Uncompressed: pn.DiffIDs[i].String()}
}

// feed gives the unpacker layer i: from the download stream as it arrives
// when this pull downloads it, else from the store (downloaded before, or
// by another pull).
func (pl *pull) feed(pn *unpack.Plan, i int, sem, unsem chan struct{}) unpack.Feed {
	l := pn.Layers[i]
	return func(ctx context.Context, apply func(io.Reader) error) error {
		fromStore := func() error { return unpack.ApplyBlob(ctx, pl.cs, l, unsem, pl.sink, apply) }
		for {
			// Held before it is read: applied from a blob that a collection
			// then removes, the layer would be in the snapshot, not the store.
			if herr := pl.hold(ctx, l.Digest); herr == nil {
				if err := fromStore(); err != nil {
					return fmt.Errorf("layer %s: %w", l.Digest, err)
				}
				return nil
			} else if !errdefs.IsNotFound(herr) {
				return fmt.Errorf("layer %s: %w", l.Digest, herr)
			}
			f, owner := pl.blobs.start(l.Digest.String())
			if !owner {
				if err := f.wait(ctx); err != nil {
					return err
				}
				continue
			}
			applied, derr := pl.download(ctx, l, pl.layerLabels(pn, i), sem, apply)
			pl.blobs.finish(l.Digest.String(), f)
			switch {
			case errors.Is(derr, errRetry):
				continue
			case derr != nil:
				return derr
			case applied:
				return nil
			default:
				// Downloaded under the pull's lease, so held already.
				if err := fromStore(); err != nil {
					return fmt.Errorf("layer %s: %w", l.Digest, err)
				}
				return nil
			}
		}
	}
}

// flights lets one goroutine do a piece of work that others wait for.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct{ done chan struct{} }

// start returns the flight for key and whether the caller owns it (and
// must finish it).
func (fs *flights) start(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

func (fs *flights) finish(key string, f *flight) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	close(f.done)
}

func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
