package metadata

import (
	"context"
	"time"

	"github.com/strata-oci/strata/metadata/collect"
	"github.com/strata-oci/strata/metadata/gc"
)

// GCOptions configures one collection; see package metadata/collect.
type GCOptions = collect.Options

// GarbageCollect runs a collection now. One that removes (not DryRun) also
// stands for every collection scheduled before it: once it returns, none of
// them runs later, so what a caller sees after it stays as it was.
func (db *DB) GarbageCollect(ctx context.Context, opts GCOptions) (gc.Stats, error) {
	return db.collect(ctx, opts, func() bool {
		if !opts.DryRun {
			db.gcMu.Lock()
			db.gcPending = false
			db.gcMu.Unlock()
		}
		return true
	})
}

// scheduleGC starts a collection gcDelay after the last deletion.
func (db *DB) scheduleGC() {
	db.gcMu.Lock()
	defer db.gcMu.Unlock()
	db.gcPending = true
	if db.closed || db.opts.gcDelay < 0 {
		return // Close runs it.
	}
	if db.gcTimer != nil && db.gcTimer.Stop() {
		db.gcWG.Done() // the stopped timer's run will not happen
	}
	db.gcWG.Add(1)
	db.gcTimer = time.AfterFunc(db.opts.gcDelay, func() {
		defer db.gcWG.Done()
		// Whether it is still wanted is decided under the store's write
		// lock: an explicit collection that got the lock first has done
		// this one's work.
		ran := false
		st, err := db.collect(context.Background(), GCOptions{}, func() bool {
			db.gcMu.Lock()
			defer db.gcMu.Unlock()
			if db.closed || !db.gcPending {
				return false
			}
			db.gcPending = false
			ran = true
			return true
		})
		if !ran {
			return
		}
		if err != nil {
			db.opts.logger.Warn("scheduled garbage collection", "error", err)
			return
		}
		db.opts.logger.Info("garbage collected", "objects", st.Objects(), "bytes_freed", st.BytesFreed, "duration_ms", st.Duration.Milliseconds())
	})
}

// collect runs package metadata/collect holding wlock for writing, so no
// transaction and no commit runs between its mark and its sweep. wanted
// runs under the lock, first: when it returns false nothing is collected.
func (db *DB) collect(ctx context.Context, opts GCOptions, wanted func() bool) (gc.Stats, error) {
	start := time.Now()
	db.wlock.Lock()
	defer db.wlock.Unlock()
	if !wanted() {
		return gc.Stats{DryRun: opts.DryRun}, nil
	}
	stats, err := collect.Run(ctx, db.db, collect.Config{
		Backend:      db.backend,
		Snapshotters: db.opts.snapshotters,
		IngestGrace:  db.opts.ingestGrace,
		MinFree:      db.opts.minFree,
		Logger:       db.opts.logger,
	}, opts)
	if err == nil {
		stats.Duration = time.Since(start)
	}
	return stats, err
}
