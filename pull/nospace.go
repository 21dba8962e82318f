package pull

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
)

// noteIngest records an ingest ref the pull wrote to, for failed to drop.
func (pl *pull) noteIngest(ref string) {
	pl.ingestMu.Lock()
	defer pl.ingestMu.Unlock()
	if pl.ingests == nil {
		pl.ingests = map[string]struct{}{}
	}
	pl.ingests[ref] = struct{}{}
}

// noSpace reports whether err is the filesystem running out of space or
// quota.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// failed is called with the error of a pull that ended (every download
// stopped). When the store ran out of space, the pull's partial downloads
// are dropped: kept, they would hold the space that a collection is then
// asked for and, at most 24 hours old, GC keeps them (issue 11, item 7).
// A later pull fetches those blobs from the start.
func (pl *pull) failed(ctx context.Context, err error) error {
	if !noSpace(err) {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	pl.ingestMu.Lock()
	refs := pl.ingests
	pl.ingests = nil
	pl.ingestMu.Unlock()
	// Only ingests no writer holds: a download this pull gave up may have
	// been taken over by another pull of the same blob, which goes on.
	abort := pl.cs.Abort
	if ia, ok := pl.cs.(interface {
		AbortIdle(ctx context.Context, ref string) error
	}); ok {
		abort = ia.AbortIdle
	}
	dropped := 0
	for ref := range refs {
		switch aerr := abort(ctx, ref); {
		case aerr == nil:
			dropped++
		case errors.Is(aerr, errdefs.ErrNotFound):
		default:
			// Another pull in this process writes it now: it is theirs.
			pl.log.Warn("drop a partial download after running out of space", "ref", ref, "error", aerr)
		}
	}
	return fmt.Errorf("pull %s: no space left on the store's filesystem (%d partial downloads dropped; `strata gc` frees what the failed pull left): %w", pl.ref, dropped, err)
}
