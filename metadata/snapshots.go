package metadata

import (
	"fmt"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/metadata/snapshotter"
	"github.com/strata-oci/strata/snapshots"
)

// WithSnapshotter registers a snapshot backend under name ("overlayfs",
// "native"); DB.Snapshotter(name) returns its namespaced view, and GC
// removes what no namespace refers to from it. The DB closes it.
func WithSnapshotter(name string, sn snapshots.Snapshotter) Opt {
	return func(o *options) error {
		if name == "" || sn == nil {
			return fmt.Errorf("snapshotter %q: name and snapshotter are required: %w", name, errdefs.ErrInvalidArgument)
		}
		if o.snapshotters == nil {
			o.snapshotters = map[string]snapshots.Snapshotter{}
		}
		o.snapshotters[name] = sn
		return nil
	}
}

// Snapshotter returns the namespaced view of the backend registered as
// name, or nil when there is none. Keys are per namespace; the backend
// keys are "<namespace>/<seq>/<key>", and the records live under
// v1/<namespace>/snapshots/<name>/<key> (see doc.go).
func (db *DB) Snapshotter(name string) snapshots.Snapshotter {
	sn, ok := db.opts.snapshotters[name]
	if !ok {
		return nil
	}
	return snapshotter.New(snapshotDB{db}, name, sn)
}

// SnapshotterNames returns the names of the registered backends.
func (db *DB) SnapshotterNames() []string {
	var out []string
	for n := range db.opts.snapshotters {
		out = append(out, n)
	}
	return out
}

// snapshotDB is the database as a namespaced snapshotter uses it.
type snapshotDB struct{ db *DB }

func (s snapshotDB) View(fn func(*bolt.Tx) error) error   { return s.db.view(fn) }
func (s snapshotDB) Update(fn func(*bolt.Tx) error) error { return s.db.update(fn) }
func (s snapshotDB) Removed()                             { s.db.scheduleGC() }
