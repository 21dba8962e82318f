// Package unpack is strata's one unpacker: it turns the layers of an image
// manifest into committed snapshots named by their chain IDs.
//
//	plan     NewPlan: the manifest's layers, their diff IDs (from the config)
//	         and chain IDs, the snapshotter and whether it can rebase
//	apply    Plan.Layer: an active snapshot prepared on nothing (rebase) or
//	         on the parent chain, the layer's stream applied into it
//	verify   VerifyDiffID: the uncompressed digest of what was applied must
//	         be the config's diff ID (errdefs.ErrFailedPrecondition)
//	commit   Plan.Layer, once chain i-1 is committed: fixed up against the
//	         parents (rebase) and committed as chain i; Plan.Label then
//	         labels the config with the top chain for garbage collection
//
// Where the stream comes from is the caller's: pull feeds the download as
// it arrives (and so applies every layer of an image at once where the
// snapshotter is a snapshots.Rebaser that can rebase), Manifest reads the
// blobs from the content store (the unpack job, import), the diff service
// applies one layer and checks it with VerifyDiffID.
package unpack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/snapshots"
)

// Plan is the unpacking of one manifest into one snapshotter.
type Plan struct {
	// Snapshotter is the snapshotter's name: the GC label of the config
	// and the lease resources of the snapshots name it.
	Snapshotter string
	sn          snapshots.Snapshotter
	// Rebase says layers are applied apart from their parents and stacked
	// at commit (snapshots.CanRebase).
	Rebase    bool
	Manifest  ocispec.Descriptor
	Config    ocispec.Descriptor
	Layers    []ocispec.Descriptor
	DiffIDs   []digest.Digest
	Chains    []digest.Digest
	committed []chan struct{}
	log       *slog.Logger
}

// NewPlan reads what unpacking manifest md (whose manifest and config are
// in p) into sn, named snName, needs. Errors are those of reading the
// manifest and its config, naming the manifest.
func NewPlan(ctx context.Context, p content.Provider, md ocispec.Descriptor, snName string, sn snapshots.Snapshotter, log *slog.Logger) (*Plan, error) {
	man, err := images.ReadManifest(ctx, p, md)
	if err != nil {
		return nil, err
	}
	diffIDs, err := images.RootFS(ctx, p, man)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pn := &Plan{Snapshotter: snName, sn: sn, Rebase: snapshots.CanRebase(sn), Manifest: md, Config: man.Config,
		Layers: man.Layers, DiffIDs: diffIDs, Chains: images.ChainIDs(diffIDs), log: log}
	pn.committed = make([]chan struct{}, len(man.Layers))
	for i := range pn.committed {
		pn.committed[i] = make(chan struct{})
	}
	return pn, nil
}

// Committed records that chain i exists (committed by this plan or found):
// layer i+1 may commit on it.
func (pn *Plan) Committed(i int) { close(pn.committed[i]) }

// Top returns the top chain ID; "" for a manifest without layers.
func (pn *Plan) Top() digest.Digest {
	if len(pn.Chains) == 0 {
		return ""
	}
	return pn.Chains[len(pn.Chains)-1]
}

// Label gives the config the GC label that keeps the top snapshot as long
// as the image's config lives.
func (pn *Plan) Label(ctx context.Context, cs content.Manager) error {
	if len(pn.Chains) == 0 {
		return nil
	}
	key := lbl.GCRefSnapshotPrefix + pn.Snapshotter
	_, err := cs.Update(ctx, content.Info{Digest: pn.Config.Digest, Labels: map[string]string{key: pn.Top().String()}}, "labels."+key)
	return err
}

// VerifyDiffID checks that applying layer gave the uncompressed digest
// want: errdefs.ErrFailedPrecondition naming both otherwise. It is the one
// diff-ID check of strata's unpacking and of the diff service.
func VerifyDiffID(layer ocispec.Descriptor, got, want digest.Digest) error {
	if got != want {
		return fmt.Errorf("layer %s: its uncompressed content has digest %s, the image config (or its label) says %s: %w",
			layer.Digest, got, want, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Feed gives a layer's bytes to apply: it calls apply once with the
// layer's stream (compressed or not) and returns apply's error or its own.
type Feed func(ctx context.Context, apply func(io.Reader) error) error

// Layer makes chain snapshot i: it prepares an active snapshot (on nothing
// when the plan rebases, else on chain i-1), applies the stream feed gives
// into it, verifies the diff ID, waits until chain i-1 is committed
// (Committed), and commits it as chain i. Another unpacker committing
// chain i first is no error: this one's snapshot goes. The caller calls
// Committed(i) once Layer returns nil.
func (pn *Plan) Layer(ctx context.Context, i int, feed Feed) (err error) {
	l := pn.Layers[i]
	chain := pn.Chains[i].String()
	parent := ""
	if i > 0 {
		parent = pn.Chains[i-1].String()
	}
	key := "extract-" + randomKey() + "-" + chain
	prepParent := parent
	mode := archive.WhiteoutNative
	if pn.Rebase {
		prepParent, mode = "", archive.WhiteoutOverlay
	}
	mounts, err := pn.sn.Prepare(ctx, key, prepParent)
	if err != nil {
		return fmt.Errorf("layer %s: prepare snapshot: %w", l.Digest, err)
	}
	defer func() {
		if err != nil {
			if rerr := pn.sn.Remove(context.WithoutCancel(ctx), key); rerr != nil && !errdefs.IsNotFound(rerr) {
				pn.log.Warn("remove the snapshot of a failed unpack", "key", key, "error", rerr)
			}
		}
	}()
	var res archive.ApplyResult
	var aopts []diff.ApplyOpt
	if pn.Rebase && i > 0 {
		aopts = append(aopts, diff.WithDeferredLowerLinks()) // made by fixUp
	}
	if err := feed(ctx, func(r io.Reader) error {
		var err error
		res, err = diff.Apply(ctx, mounts, r, mode, aopts...)
		return err
	}); err != nil {
		return err
	}
	if err := VerifyDiffID(l, res.DiffID, pn.DiffIDs[i]); err != nil {
		return err
	}
	var opts []snapshots.Opt
	if i > 0 {
		select {
		case <-pn.committed[i-1]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pn.Rebase {
			if len(res.Whiteouts) > 0 || len(res.ImplicitDirs) > 0 || len(res.LowerLinks) > 0 {
				if err := pn.fixUp(ctx, mounts, parent, res); err != nil {
					return fmt.Errorf("layer %s: %w", l.Digest, err)
				}
			}
			opts = append(opts, snapshots.WithParent(parent))
		}
	}
	if err := pn.sn.Commit(ctx, chain, key, opts...); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// Another unpacker got there first; ours goes.
			return pn.sn.Remove(ctx, key)
		}
		return fmt.Errorf("layer %s: commit snapshot %s: %w", l.Digest, chain, err)
	}
	return nil
}

func randomKey() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
