// Package collect is garbage collection's database side: it reads the
// metadata database's records into metadata/gc's nodes (roots: images,
// containers, unexpired leases, records labelled containerd.io/gc.root;
// edges: image targets, a container's snapshot, containerd.io/gc.ref.*
// labels, snapshot parents, what a lease holds), marks, and sweeps: the
// unmarked records, expired leases, blobs and backend snapshots no
// namespace refers to any more, stale ingests, and partial downloads under
// a free-space threshold (MinFree). Package metadata runs it as
// DB.GarbageCollect, holding its write lock; collect works over the
// database's bucket layout (metadata/internal/schema) and never imports
// metadata.
package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/snapshots"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

// Backend is what a collection uses of the blob store under the database
// (content/local.Store).
type Backend interface {
	// ListStatuses lists the ingests in progress.
	ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error)
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
	Delete(ctx context.Context, dgst digest.Digest) error
	// Abort removes an ingest no writer holds (errdefs.ErrUnavailable
	// when one does).
	Abort(ctx context.Context, ref string) error
	// Digests calls fn with every committed blob's digest, cheaply.
	Digests(ctx context.Context, fn func(digest.Digest) error) error
	// Active reports whether a writer holds the ingest ref right now.
	Active(ref string) bool
}

// Config is what a collection works on, fixed when the database opens.
type Config struct {
	Backend Backend
	// Snapshotters are the snapshot backends by name.
	Snapshotters map[string]snapshots.Snapshotter
	// IngestGrace is how long an ingest that no lease holds and no writer
	// uses is kept since its last write.
	IngestGrace time.Duration
	// MinFree is the free space every collection keeps by dropping
	// partial downloads (zero: none).
	MinFree MinFree
	Logger  *slog.Logger
}

// Options configures one collection.
type Options struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// List fills Stats.Removed with each object removed.
	List bool
	// DropIngests drops every ingest no writer holds (partial downloads),
	// whatever its age or lease.
	DropIngests bool
	// MinFree, when set, replaces Config.MinFree for this collection.
	MinFree *MinFree
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
	lb := b.Bucket(schema.Labels)
	return lb != nil && lb.Get([]byte(key)) != nil
}

// collector holds one collection's view of the database.
type collector struct {
	cfg     Config
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
	if c.cfg.Backend.Active(bref) {
		return true
	}
	st, ok := c.ingests[bref]
	return ok && c.now.Sub(st.updated) < c.cfg.IngestGrace
}

func (c *collector) roots(ctx context.Context) ([]gc.Node, error) {
	var roots []gc.Node
	err := schema.Root(c.tx).ForEachBucket(func(nsk []byte) error {
		ns := string(nsk)
		nsb := schema.Root(c.tx).Bucket(nsk)
		if ib := nsb.Bucket(schema.Images); ib != nil {
			_ = ib.ForEachBucket(func(k []byte) error {
				roots = append(roots, gc.Node{Type: gc.ResourceImage, Namespace: ns, Key: string(k)})
				return nil
			})
		}
		if cb := nsb.Bucket(schema.Containers); cb != nil {
			_ = cb.ForEachBucket(func(k []byte) error {
				roots = append(roots, gc.Node{Type: gc.ResourceContainer, Namespace: ns, Key: string(k)})
				return nil
			})
		}
		if lb := nsb.Bucket(schema.Leases); lb != nil {
			_ = lb.ForEachBucket(func(k []byte) error {
				if !schema.Expired(boltutil.ReadMap(lb.Bucket(k), schema.Labels), c.now) {
					roots = append(roots, gc.Node{Type: gc.ResourceLease, Namespace: ns, Key: string(k)})
				}
				return nil
			})
		}
		if bb := schema.NS(c.tx, ns, schema.Content, schema.Blob); bb != nil {
			// One sequential pass reads every blob's labels: roots now,
			// edges kept for refs, so the mark never seeks a record.
			_ = bb.ForEachBucket(func(k []byte) error {
				lb := bb.Bucket(k).Bucket(schema.Labels)
				if lb == nil {
					return nil
				}
				n := gc.Node{Type: gc.ResourceContent, Namespace: ns, Key: string(k)}
				if lb.Get([]byte(lbl.GCRoot)) != nil {
					roots = append(roots, n)
				}
				var edges []gc.Node
				labelRefs(ns, boltutil.ReadMap(bb.Bucket(k), schema.Labels), func(e gc.Node) { edges = append(edges, e) })
				if len(edges) > 0 {
					c.blobEdges[n] = edges
				}
				return nil
			})
		}
		if ib := schema.NS(c.tx, ns, schema.Content, schema.Ingests); ib != nil {
			_ = ib.ForEachBucket(func(k []byte) error {
				if c.ingestLive(string(ib.Bucket(k).Get(schema.Ref))) {
					roots = append(roots, gc.Node{Type: gc.ResourceIngest, Namespace: ns, Key: string(k)})
				}
				return nil
			})
		}
		if sb := nsb.Bucket(schema.Snapshots); sb != nil {
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

func (c *collector) refs(ctx context.Context, n gc.Node, visit func(gc.Node)) error {
	switch n.Type {
	case gc.ResourceImage:
		b := schema.NS(c.tx, n.Namespace, schema.Images, []byte(n.Key))
		if b == nil {
			return nil
		}
		// The target and what the image's labels name; below the
		// target only containerd.io/gc.ref.* labels lead on, as in
		// containerd: GC never reads a manifest, so a client may drop
		// the layer references of an unpacked image (ctr content prune
		// references, discard_unpacked_layers), and a blob that cannot
		// be parsed cannot stop a collection.
		labelRefs(n.Namespace, boltutil.ReadMap(b, schema.Labels), visit)
		if tb := b.Bucket(schema.Target); tb != nil && len(tb.Get(schema.Digest)) > 0 {
			visit(gc.Node{Type: gc.ResourceContent, Namespace: n.Namespace, Key: string(tb.Get(schema.Digest))})
		}
	case gc.ResourceContainer:
		// Its root filesystem snapshot and what its labels name.
		b := schema.NS(c.tx, n.Namespace, schema.Containers, []byte(n.Key))
		if b == nil {
			return nil
		}
		labelRefs(n.Namespace, boltutil.ReadMap(b, schema.Labels), visit)
		if sn, key := b.Get(schema.Snapshotter), b.Get(schema.SnapshotKey); len(sn) > 0 && len(key) > 0 {
			visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: n.Namespace, Key: string(sn) + "/" + string(key)})
		}
	case gc.ResourceLease:
		b := schema.NS(c.tx, n.Namespace, schema.Leases, []byte(n.Key))
		if b == nil {
			return nil
		}
		schema.ForEachResource(b, func(typ, id string) {
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
		if b := schema.NS(c.tx, n.Namespace, schema.Snapshots, []byte(sn), []byte(key)); b != nil {
			labelRefs(n.Namespace, boltutil.ReadMap(b, schema.Labels), visit)
			if p := b.Get(schema.Parent); len(p) > 0 {
				visit(gc.Node{Type: gc.ResourceSnapshot, Namespace: n.Namespace, Key: sn + "/" + string(p)})
			}
		}
	}
	return nil
}

// Mark returns the nodes reachable from the roots in tx at now; ingests in
// live (backend ref → last write) younger than cfg.IngestGrace, or held by
// a writer, are roots.
func Mark(ctx context.Context, tx *bolt.Tx, cfg Config, now time.Time, live map[string]time.Time) (map[gc.Node]struct{}, error) {
	c := &collector{cfg: cfg, tx: tx, now: now, ingests: map[string]ingestState{}, blobEdges: map[gc.Node][]gc.Node{}}
	for ref, t := range live {
		c.ingests[ref] = ingestState{updated: t}
	}
	return c.mark(ctx)
}

func (c *collector) mark(ctx context.Context) (map[gc.Node]struct{}, error) {
	roots, err := c.roots(ctx)
	if err != nil {
		return nil, err
	}
	return gc.Tricolor(ctx, roots, func(n gc.Node, visit func(gc.Node)) error {
		return c.refs(ctx, n, visit)
	})
}

// Run marks and sweeps bdb. The caller holds the database's write lock for
// the whole run, so no transaction and no commit can run between the mark
// (a read transaction, cheap over 100,000 records) and the sweep (a write
// transaction, only when there is something to remove).
func Run(ctx context.Context, bdb *bolt.DB, cfg Config, opts Options) (gc.Stats, error) {
	start := time.Now()
	stats := gc.Stats{DryRun: opts.DryRun}
	note := func(s string) {
		if opts.List {
			stats.Removed = append(stats.Removed, s)
		}
	}
	backendIngests, err := cfg.Backend.ListStatuses(ctx)
	if err != nil {
		return stats, fmt.Errorf("gc: list ingests: %w", err)
	}
	c := &collector{cfg: cfg, now: time.Now(), ingests: map[string]ingestState{}, blobEdges: map[gc.Node][]gc.Node{}}
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
	err = schema.Translate(bdb.View(func(tx *bolt.Tx) error {
		c.tx = tx
		marked, err := c.mark(ctx)
		if err != nil {
			return err
		}
		return schema.Root(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if bb := schema.NS(tx, ns, schema.Content, schema.Blob); bb != nil {
				_ = bb.ForEachBucket(func(k []byte) error {
					if _, ok := marked[gc.Node{Type: gc.ResourceContent, Namespace: ns, Key: string(k)}]; ok {
						referenced[digest.Digest(k)] = struct{}{}
					} else {
						victims = append(victims, victim{ns, [][]byte{schema.Content, schema.Blob}, append([]byte(nil), k...)})
						stats.ContentRemoved++
						note(fmt.Sprintf("content %s/%s", ns, k))
					}
					return nil
				})
			}
			if ib := schema.NS(tx, ns, schema.Content, schema.Ingests); ib != nil {
				_ = ib.ForEachBucket(func(k []byte) error {
					if _, ok := marked[gc.Node{Type: gc.ResourceIngest, Namespace: ns, Key: string(k)}]; ok {
						keptIngests[string(ib.Bucket(k).Get(schema.Ref))] = struct{}{}
					} else {
						victims = append(victims, victim{ns, [][]byte{schema.Content, schema.Ingests}, append([]byte(nil), k...)})
						stats.IngestsRemoved++
						note(fmt.Sprintf("ingest %s/%s", ns, k))
					}
					return nil
				})
			}
			if sb := schema.NS(tx, ns, schema.Snapshots); sb != nil {
				_ = sb.ForEachBucket(func(sn []byte) error {
					ssb := sb.Bucket(sn)
					if keptSnapshots[string(sn)] == nil {
						keptSnapshots[string(sn)] = map[string]struct{}{}
					}
					return ssb.ForEachBucket(func(k []byte) error {
						if _, ok := marked[gc.Node{Type: gc.ResourceSnapshot, Namespace: ns, Key: string(sn) + "/" + string(k)}]; ok {
							keptSnapshots[string(sn)][string(ssb.Bucket(k).Get(schema.Name))] = struct{}{}
						} else {
							snapshotVictims = append(snapshotVictims, snapshotVictim{ns, string(sn), string(k)})
							stats.SnapshotsRemoved++
							note(fmt.Sprintf("snapshot %s/%s/%s", ns, sn, k))
						}
						return nil
					})
				})
			}
			if lb := schema.NS(tx, ns, schema.Leases); lb != nil {
				_ = lb.ForEachBucket(func(k []byte) error {
					if schema.Expired(boltutil.ReadMap(lb.Bucket(k), schema.Labels), c.now) {
						victims = append(victims, victim{ns, [][]byte{schema.Leases}, append([]byte(nil), k...)})
						stats.LeasesRemoved++
						note(fmt.Sprintf("lease %s/%s", ns, k))
					}
					return nil
				})
			}
			return ctx.Err()
		})
	}))
	if err != nil {
		return stats, fmt.Errorf("gc: mark: %w", err)
	}
	if len(victims)+len(snapshotVictims) > 0 && !opts.DryRun {
		err = schema.Translate(bdb.Update(func(tx *bolt.Tx) error {
			for _, v := range snapshotVictims {
				if sb := schema.NS(tx, v.ns, schema.Snapshots, []byte(v.sn)); sb != nil {
					if err := schema.RemoveSnapshotRecord(sb, v.key); err != nil {
						return err
					}
				}
			}
			for _, v := range victims {
				if b := schema.NS(tx, v.ns, v.path...); b != nil {
					if err := b.DeleteBucket(v.key); err != nil && !schema.IsBucketNotFound(err) {
						return err
					}
				}
			}
			return nil
		}))
		if err != nil {
			return stats, fmt.Errorf("gc: sweep records: %w", err)
		}
	}

	// Backend snapshots no namespace refers to any more.
	if err := sweepSnapshots(ctx, cfg, keptSnapshots, opts.DryRun, note); err != nil {
		return stats, fmt.Errorf("gc: sweep snapshots: %w", err)
	}

	// Blobs no namespace refers to any more.
	err = cfg.Backend.Digests(ctx, func(dgst digest.Digest) error {
		if _, ok := referenced[dgst]; ok {
			return nil
		}
		info, err := cfg.Backend.Info(ctx, dgst)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil
			}
			return err
		}
		if !opts.DryRun {
			if err := cfg.Backend.Delete(ctx, dgst); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
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
			if err := cfg.Backend.Abort(ctx, st.Ref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				if errors.Is(err, errdefs.ErrUnavailable) {
					continue // a writer took it since
				}
				return stats, fmt.Errorf("gc: remove ingest %q: %w", st.Ref, err)
			}
		}
		stats.BytesFreed += st.Offset
		note("ingest data " + st.Ref)
	}
	if err := dropIngests(ctx, bdb, cfg, ingestsLeft, opts, &stats, note); err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	stats.Duration = time.Since(start)
	return stats, nil
}

// sweepSnapshots removes from each backend the snapshots that no kept
// record names, children before their parents (a backend refuses to remove
// a parent first).
func sweepSnapshots(ctx context.Context, cfg Config, kept map[string]map[string]struct{}, dryRun bool, note func(string)) error {
	for name, sn := range cfg.Snapshotters {
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
