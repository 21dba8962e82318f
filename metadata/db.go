package metadata

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/filters"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
)

// Backend is the blob store under the metadata layer (content/local.Store).
type Backend interface {
	content.Store
	// Digests calls fn with every committed blob's digest, cheaply.
	Digests(ctx context.Context, fn func(digest.Digest) error) error
	// Active reports whether a writer holds the ingest ref right now.
	Active(ref string) bool
	// BrokenIngests lists ingest directories that cannot be resumed.
	BrokenIngests() ([]string, error)
	// RemoveBrokenIngest removes one of them if it is still broken and no
	// writer holds it, atomically with respect to writers.
	RemoveBrokenIngest(path string) (removed bool, err error)
}

// Opt configures a DB.
type Opt func(*options) error

type options struct {
	logger      *slog.Logger
	gcDelay     time.Duration
	ingestGrace time.Duration
	lockTimeout time.Duration
	minFree     MinFree
	sharing     SharingPolicy
	// snapshotters are the snapshot backends by name; see WithSnapshotter.
	snapshotters map[string]snapshots.Snapshotter
}

// WithLogger sets the logger for background work (scheduled GC).
func WithLogger(l *slog.Logger) Opt {
	return func(o *options) error { o.logger = l; return nil }
}

// WithGCDelay sets how long after the last deletion a scheduled collection
// starts (debounce); negative disables scheduling. Default 100ms.
func WithGCDelay(d time.Duration) Opt {
	return func(o *options) error { o.gcDelay = d; return nil }
}

// WithIngestGrace sets how long an ingest that no lease holds and no writer
// uses is kept since its last write before GC removes it. Default 24h.
func WithIngestGrace(d time.Duration) Opt {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("ingest grace %s: must not be negative: %w", d, errdefs.ErrInvalidArgument)
		}
		o.ingestGrace = d
		return nil
	}
}

// WithLockTimeout sets how long Open waits for another process to release the
// database. Default 1s.
func WithLockTimeout(d time.Duration) Opt {
	return func(o *options) error { o.lockTimeout = d; return nil }
}

// DB is the metadata database and the namespaced stores built on it.
type DB struct {
	db      *bolt.DB
	backend Backend
	opts    options

	// wlock is held for reading by every write transaction and by every
	// operation that makes a blob or an ingest visible, and for writing by GC
	// (nothing changes between its mark and its sweep) and by fsck while it
	// compares what it hashed with the records and repairs (not while it
	// hashes).
	wlock sync.RWMutex

	gcMu      sync.Mutex
	gcTimer   *time.Timer
	gcPending bool
	gcWG      sync.WaitGroup
	closed    bool
}

// Open opens (creating or migrating) the database at path over backend. It
// returns errdefs.ErrUnavailable when another process holds the database.
func Open(ctx context.Context, path string, backend Backend, opts ...Opt) (*DB, error) {
	o := options{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), gcDelay: 100 * time.Millisecond, ingestGrace: 24 * time.Hour, lockTimeout: time.Second}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("metadata database %s is locked by another process (a running stratad or strata command): %w", path, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open metadata database %s: %w", path, err)
	}
	db := &DB{db: bdb, backend: backend, opts: o}
	if err := db.migrate(); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("metadata database %s: %w", path, err)
	}
	return db, nil
}

// migration moves the database from schema version from to from+1.
type migration struct {
	from int
	fn   func(tx *bolt.Tx) error
}

// migrations run in order on open; append one when the bucket layout changes.
var migrations = []migration{
	{from: 0, fn: func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketV1)
		return err
	}},
}

func (db *DB) migrate() error {
	return db.db.Update(func(tx *bolt.Tx) error {
		version := 0
		if b := tx.Bucket(bucketV1); b != nil {
			if v := b.Get(keyVersion); v != nil {
				version = int(binary.BigEndian.Uint64(v))
			} else {
				version = 1
			}
		}
		if version > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this strata understands (%d): %w", version, schemaVersion, errdefs.ErrFailedPrecondition)
		}
		for _, m := range migrations {
			if m.from >= version {
				if err := m.fn(tx); err != nil {
					return fmt.Errorf("migrate schema from version %d: %w", m.from, err)
				}
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, schemaVersion)
		return tx.Bucket(bucketV1).Put(keyVersion, v)
	})
}

// SchemaVersion returns the schema version of the open database.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.db.View(func(tx *bolt.Tx) error {
		v = int(binary.BigEndian.Uint64(tx.Bucket(bucketV1).Get(keyVersion)))
		return nil
	})
	return v, err
}

// Close runs a pending scheduled collection, waits for background work and
// closes the database.
func (db *DB) Close() error {
	db.gcMu.Lock()
	if db.closed {
		db.gcMu.Unlock()
		return nil
	}
	db.closed = true
	pending := db.gcPending
	if db.gcTimer != nil && db.gcTimer.Stop() {
		db.gcWG.Done()
	}
	db.gcMu.Unlock()
	db.gcWG.Wait()
	if pending {
		if _, err := db.collect(context.Background(), GCOptions{}, func() bool { return true }); err != nil {
			db.opts.logger.Warn("garbage collection before close", "error", err)
		}
	}
	err := db.db.Close()
	for name, sn := range db.opts.snapshotters {
		if cerr := sn.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close snapshotter %s: %w", name, cerr))
		}
	}
	return err
}

func (db *DB) view(fn func(*bolt.Tx) error) error { return schema.Translate(db.db.View(fn)) }

// update runs a write transaction; GC waits for it, and it for GC.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	db.wlock.RLock()
	defer db.wlock.RUnlock()
	return db.updateHeld(fn)
}

// updateHeld runs a write transaction for a caller that holds wlock already
// (a second RLock could deadlock behind a waiting GC).
func (db *DB) updateHeld(fn func(*bolt.Tx) error) error { return schema.Translate(db.db.Update(fn)) }

// listScope returns the context's namespace and the filter that the strings
// fs make, as every List and Walk needs.
func listScope(ctx context.Context, fs []string) (string, filters.Filter, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return "", nil, err
	}
	return ns, filter, nil
}
