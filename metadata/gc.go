package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/snapshots"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// GCOptions configures one collection.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// List fills Stats.Removed with each object removed.
	List bool
	// DropIngests drops every ingest no writer holds (partial downloads),
	// whatever its age or lease.
	DropIngests bool
	// MinFree, when set, replaces the DB's free space threshold (see
	// WithMinFree) for this collection.
	MinFree *MinFree
}

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

// labelRefs calls visit for every node that labels point at.
func labelRefs(ns string, labels map[string]string, visit func(gc.Node)) {
	for k, v := range labels {
		switch {
		case strings.HasPrefix(k, lbl.GCRefContent):
			if digest.Digest(v).Validate() == nil {
				visit(gc.Node{Type: gc.ResourceContent, Namespace: ns, Key: v})
			}
		case strings.HasPrefix(k, lbl.GCRefSnapshotPrefix):
			sn := k[len(lbl.GCRefSnapshotPrefix):]
			if i := strings.IndexByte(sn, '/'); i >= 0 {
				sn = sn[:i]
			}
			if sn != "" && v != "" {
				visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: ns, Key: sn + "/" + v})
			}
		}
	}
}

func hasLabel(b *bolt.Bucket, key string) bool {
	lb := b.Bucket(bucketLabels)
	return lb != nil && lb.Get([]byte(key)) != nil
}

// collector holds one collection's view of the database.
type collector struct {
	db      *DB
	tx      *bolt.Tx
	now     time.Time
	ingests map[string]ingestState // backend ref → state
	// blobEdges holds the gc.ref label edges of every labelled blob.
	blobEdges map[gc.Node][]gc.Node
}

type ingestState struct {
	updated time.Time
	offset  int64
}

func (c *collector) ingestLive(bref string) bool {
	if c.db.backend.Active(bref) {
		return true
	}
	st, ok := c.ingests[bref]
	return ok && c.now.Sub(st.updated) < c.db.opts.ingestGrace
}

func (c *collector) roots(ctx context.Context) ([]gc.Node, error) {
	var roots []gc.Node
	err := tx1(c.tx).ForEachBucket(func(nsk []byte) error {
		ns := string(nsk)
		nsb := tx1(c.tx).Bucket(nsk)
		if ib := nsb.Bucket(bucketImages); ib != nil {
			_ = ib.ForEachBucket(func(k []byte) error {
				roots = append(roots, gc.Node{Type: gc.ResourceImage, Namespace: ns, Key: string(k)})
				return nil
			})
		}
		if cb := nsb.Bucket(bucketContainers); cb != nil {
			_ = cb.ForEachBucket(func(k []byte) error {
				roots = append(roots, gc.Node{Type: gc.ResourceContainer, Namespace: ns, Key: string(k)})
				return nil
			})
		}
		if lb := nsb.Bucket(bucketLeases); lb != nil {
			_ = lb.ForEachBucket(func(k []byte) error {
				if !expired(boltutil.ReadMap(lb.Bucket(k), bucketLabels), c.now) {
					roots = append(roots, gc.Node{Type: gc.ResourceLease, Namespace: ns, Key: string(k)})
				}
				return nil
			})
		}
		if bb := nsBucket(c.tx, ns, bucketContent, bucketBlob); bb != nil {
			// One sequential pass reads every blob's labels: roots now,
			// edges kept for refs, so the mark never seeks a record.
			_ = bb.ForEachBucket(func(k []byte) error {
				lb := bb.Bucket(k).Bucket(bucketLabels)
				if lb == nil {
					return nil
				}
				n := gc.Node{Type: gc.ResourceContent, Namespace: ns, Key: string(k)}
				if lb.Get([]byte(lbl.GCRoot)) != nil {
					roots = append(roots, n)
				}
				var edges []gc.Node
				labelRefs(ns, boltutil.ReadMap(bb.Bucket(k), bucketLabels), func(e gc.Node) { edges = append(edges, e) })
				if len(edges) > 0 {
					c.blobEdges[n] = edges
				}
				return nil
			})
		}
		if ib := nsBucket(c.tx, ns, bucketContent, bucketIngests); ib != nil {
			_ = ib.ForEachBucket(func(k []byte) error {
				if c.ingestLive(string(ib.Bucket(k).Get(keyRef))) {
					roots = append(roots, gc.Node{Type: gc.ResourceIngest, Namespace: ns, Key: string(k)})
				}
				return nil
			})
		}
		if sb := nsb.Bucket(bucketSnapshots); sb != nil {
			_ = sb.ForEachBucket(func(sn []byte) error {
				ssb := sb.Bucket(sn)
				return ssb.ForEachBucket(func(k []byte) error {
					if hasLabel(ssb.Bucket(k), lbl.GCRoot) {
						roots = append(roots, gc.Node{Type: gc.ResourceSnapshot, Namespace: ns, Key: string(sn) + "/" + string(k)})
					}
					return nil
				})
			})
		}
		return ctx.Err()
	})
	return roots, err
}

func tx1(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketV1) }

func (c *collector) refs(ctx context.Context, n gc.Node, visit func(gc.Node)) error {
	switch n.Type {
	case gc.ResourceImage:
		b := nsBucket(c.tx, n.Namespace, bucketImages, []byte(n.Key))
		if b == nil {
			return nil
		}
		// The target and what the image's labels name; below the
		// target only containerd.io/gc.ref.* labels lead on, as in
		// containerd: GC never reads a manifest, so a client may drop
		// the layer references of an unpacked image (ctr content prune
		// references, discard_unpacked_layers), and a blob that cannot
		// be parsed cannot stop a collection.
		img := readImage(n.Key, b)
		labelRefs(n.Namespace, img.Labels, visit)
		if img.Target.Digest != "" {
			visit(gc.Node{Type: gc.ResourceContent, Namespace: n.Namespace, Key: img.Target.Digest.String()})
		}
	case gc.ResourceContainer:
		// Its root filesystem snapshot and what its labels name.
		b := nsBucket(c.tx, n.Namespace, bucketContainers, []byte(n.Key))
		if b == nil {
			return nil
		}
		labelRefs(n.Namespace, boltutil.ReadMap(b, bucketLabels), visit)
		if sn, key := b.Get(keySnapshotter), b.Get(keySnapshotKey); len(sn) > 0 && len(key) > 0 {
			visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: n.Namespace, Key: string(sn) + "/" + string(key)})
		}
	case gc.ResourceLease:
		b := nsBucket(c.tx, n.Namespace, bucketLeases, []byte(n.Key))
		if b == nil {
			return nil
		}
		forEachResource(b, func(typ, id string) {
			switch {
			case typ == "content":
				visit(gc.Node{Type: gc.ResourceContent, Namespace: n.Namespace, Key: id})
			case typ == "ingests":
				visit(gc.Node{Type: gc.ResourceIngest, Namespace: n.Namespace, Key: id})
			case strings.HasPrefix(typ, "snapshots/"):
				visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: n.Namespace, Key: strings.TrimPrefix(typ, "snapshots/") + "/" + id})
			}
		})
	case gc.ResourceContent:
		for _, e := range c.blobEdges[n] {
			visit(e)
		}
	case gc.ResourceSnapshot:
		sn, key, _ := strings.Cut(n.Key, "/")
		if b := nsBucket(c.tx, n.Namespace, bucketSnapshots, []byte(sn), []byte(key)); b != nil {
			labelRefs(n.Namespace, boltutil.ReadMap(b, bucketLabels), visit)
			if p := b.Get(keyParent); len(p) > 0 {
				visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: n.Namespace, Key: sn + "/" + string(p)})
			}
		}
	}
	return nil
}

// collect marks and sweeps. It holds wlock for writing the whole run, so no
// transaction and no commit can run between the mark (a read transaction,
// cheap over 100,000 records) and the sweep (a write transaction, only when
// there is something to remove).
// wanted runs under the write lock, first: when it returns false nothing is
// collected.
func (db *DB) collect(ctx context.Context, opts GCOptions, wanted func() bool) (gc.Stats, error) {
	start := time.Now()
	db.wlock.Lock()
	defer db.wlock.Unlock()
	stats := gc.Stats{DryRun: opts.DryRun}
	if !wanted() {
		return stats, nil
	}

	note := func(s string) {
		if opts.List {
			stats.Removed = append(stats.Removed, s)
		}
	}
	backendIngests, err := db.backend.ListStatuses(ctx)
	if err != nil {
		return stats, fmt.Errorf("gc: list ingests: %w", err)
	}
	c := &collector{db: db, now: time.Now(), ingests: map[string]ingestState{}, blobEdges: map[gc.Node][]gc.Node{}}
	for _, st := range backendIngests {
		c.ingests[st.Ref] = ingestState{updated: st.UpdatedAt, offset: st.Offset}
	}

	// What the sweep removes: bucket paths under v1/<namespace>.
	type victim struct {
		ns   string
		path [][]byte
		key  []byte
	}
	var victims []victim
	type snapshotVictim struct{ ns, sn, key string }
	var snapshotVictims []snapshotVictim
	// Backend snapshots that kept records name, per snapshotter.
	keptSnapshots := map[string]map[string]struct{}{}
	referenced := map[digest.Digest]struct{}{}
	keptIngests := map[string]struct{}{}
	err = db.view(func(tx *bolt.Tx) error {
		c.tx = tx
		roots, err := c.roots(ctx)
		if err != nil {
			return err
		}
		marked, err := gc.Tricolor(ctx, roots, func(n gc.Node, visit func(gc.Node)) error {
			return c.refs(ctx, n, visit)
		})
		if err != nil {
			return err
		}
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil {
				_ = bb.ForEachBucket(func(k []byte) error {
					if _, ok := marked[gc.Node{Type: gc.ResourceContent, Namespace: ns, Key: string(k)}]; ok {
						referenced[digest.Digest(k)] = struct{}{}
					} else {
						victims = append(victims, victim{ns, [][]byte{bucketContent, bucketBlob}, append([]byte(nil), k...)})
						stats.ContentRemoved++
						note(fmt.Sprintf("content %s/%s", ns, k))
					}
					return nil
				})
			}
			if ib := nsBucket(tx, ns, bucketContent, bucketIngests); ib != nil {
				_ = ib.ForEachBucket(func(k []byte) error {
					if _, ok := marked[gc.Node{Type: gc.ResourceIngest, Namespace: ns, Key: string(k)}]; ok {
						keptIngests[string(ib.Bucket(k).Get(keyRef))] = struct{}{}
					} else {
						victims = append(victims, victim{ns, [][]byte{bucketContent, bucketIngests}, append([]byte(nil), k...)})
						stats.IngestsRemoved++
						note(fmt.Sprintf("ingest %s/%s", ns, k))
					}
					return nil
				})
			}
			if sb := nsBucket(tx, ns, bucketSnapshots); sb != nil {
				_ = sb.ForEachBucket(func(sn []byte) error {
					ssb := sb.Bucket(sn)
					if keptSnapshots[string(sn)] == nil {
						keptSnapshots[string(sn)] = map[string]struct{}{}
					}
					return ssb.ForEachBucket(func(k []byte) error {
						if _, ok := marked[gc.Node{Type: gc.ResourceSnapshot, Namespace: ns, Key: string(sn) + "/" + string(k)}]; ok {
							keptSnapshots[string(sn)][string(ssb.Bucket(k).Get(keyName))] = struct{}{}
						} else {
							snapshotVictims = append(snapshotVictims, snapshotVictim{ns, string(sn), string(k)})
							stats.SnapshotsRemoved++
							note(fmt.Sprintf("snapshot %s/%s/%s", ns, sn, k))
						}
						return nil
					})
				})
			}
			if lb := nsBucket(tx, ns, bucketLeases); lb != nil {
				_ = lb.ForEachBucket(func(k []byte) error {
					if expired(boltutil.ReadMap(lb.Bucket(k), bucketLabels), c.now) {
						victims = append(victims, victim{ns, [][]byte{bucketLeases}, append([]byte(nil), k...)})
						stats.LeasesRemoved++
						note(fmt.Sprintf("lease %s/%s", ns, k))
					}
					return nil
				})
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return stats, fmt.Errorf("gc: mark: %w", err)
	}
	if len(victims)+len(snapshotVictims) > 0 && !opts.DryRun {
		err = db.updateHeld(func(tx *bolt.Tx) error {
			for _, v := range snapshotVictims {
				if sb := nsBucket(tx, v.ns, bucketSnapshots, []byte(v.sn)); sb != nil {
					if err := removeSnapshotRecord(sb, v.key); err != nil {
						return err
					}
				}
			}
			for _, v := range victims {
				if b := nsBucket(tx, v.ns, v.path...); b != nil {
					if err := b.DeleteBucket(v.key); err != nil && !isBucketNotFound(err) {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return stats, fmt.Errorf("gc: sweep records: %w", err)
		}
	}

	// Backend snapshots no namespace refers to any more.
	if err := db.sweepSnapshots(ctx, keptSnapshots, opts.DryRun, note); err != nil {
		return stats, fmt.Errorf("gc: sweep snapshots: %w", err)
	}

	// Blobs no namespace refers to any more.
	err = db.backend.Digests(ctx, func(dgst digest.Digest) error {
		if _, ok := referenced[dgst]; ok {
			return nil
		}
		info, err := db.backend.Info(ctx, dgst)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil
			}
			return err
		}
		if !opts.DryRun {
			if err := db.backend.Delete(ctx, dgst); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return err
			}
		}
		stats.BlobsRemoved++
		stats.BytesFreed += info.Size
		note("blob " + dgst.String())
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("gc: sweep blobs: %w", err)
	}
	// Ingest data whose record is gone (or never got written).
	var ingestsLeft []content.Status
	for _, st := range backendIngests {
		if _, ok := keptIngests[st.Ref]; ok || c.ingestLive(st.Ref) {
			ingestsLeft = append(ingestsLeft, st)
			continue
		}
		if !opts.DryRun {
			if err := db.backend.Abort(ctx, st.Ref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				if errors.Is(err, errdefs.ErrUnavailable) {
					continue // a writer took it since
				}
				return stats, fmt.Errorf("gc: remove ingest %q: %w", st.Ref, err)
			}
		}
		stats.BytesFreed += st.Offset
		note("ingest data " + st.Ref)
	}
	if err := db.dropIngests(ctx, ingestsLeft, opts, &stats, note); err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	stats.Duration = time.Since(start)
	return stats, nil
}

// sweepSnapshots removes from each backend the snapshots that no kept
// record names, children before their parents (a backend refuses to remove
// a parent first).
func (db *DB) sweepSnapshots(ctx context.Context, kept map[string]map[string]struct{}, dryRun bool, note func(string)) error {
	for name, sn := range db.opts.snapshotters {
		children := map[string]int{}
		parents := map[string]string{}
		var victims []string
		err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			if info.Parent != "" {
				children[info.Parent]++
				parents[info.Name] = info.Parent
			}
			if _, ok := kept[name][info.Name]; !ok {
				victims = append(victims, info.Name)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk snapshotter %s: %w", name, err)
		}
		// Remove leaves until no victim is a leaf any more; a victim
		// with a kept child stays (it cannot happen while records and
		// backend agree).
		for progress := true; progress && len(victims) > 0; {
			progress = false
			var rest []string
			for _, v := range victims {
				if err := ctx.Err(); err != nil {
					return err
				}
				if children[v] > 0 {
					rest = append(rest, v)
					continue
				}
				if !dryRun {
					if err := sn.Remove(ctx, v); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
						return fmt.Errorf("remove snapshot %s/%s: %w", name, v, err)
					}
				}
				note("snapshot data " + name + "/" + v)
				if p, ok := parents[v]; ok {
					children[p]--
				}
				progress = true
			}
			victims = rest
		}
	}
	return nil
}
