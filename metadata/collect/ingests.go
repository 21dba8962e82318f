package collect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/metadata/internal/schema"
)

// MinFree is the free space a collection keeps on the content store's
// filesystem by dropping partial downloads, oldest first: Bytes, or
// Percent of the filesystem's size. The zero value asks for nothing.
type MinFree struct {
	Bytes   int64
	Percent float64
}

// IsZero reports whether m asks for nothing.
func (m MinFree) IsZero() bool { return m.Bytes == 0 && m.Percent == 0 }

func (m MinFree) String() string {
	if m.Percent > 0 {
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(m.Bytes, 10)
}

// want returns the free bytes m asks for on a filesystem of size bytes.
func (m MinFree) want(size int64) int64 {
	if m.Percent > 0 {
		return int64(math.Ceil(float64(size) * m.Percent / 100))
	}
	return m.Bytes
}

// ParseMinFree reads a free-space threshold: a percentage ("10%") or a
// size in bytes with an optional unit ("500MB", "2GiB", "1048576"). It
// returns errdefs.ErrInvalidArgument for anything else.
func ParseMinFree(s string) (MinFree, error) {
	bad := func(why string) (MinFree, error) {
		return MinFree{}, fmt.Errorf("free space threshold %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return MinFree{}, nil
	}
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 || math.IsNaN(v) {
			return bad("want a percentage in [0, 100)")
		}
		return MinFree{Percent: v}, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	num := t
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return bad("want a percentage (10%) or a size in bytes (500MB, 2GiB)")
	}
	return MinFree{Bytes: v * mult}, nil
}

// rooter is the optional Backend method that says where the blobs live,
// for free-space checks (content/local's Store has it).
type rooter interface {
	Root() string
}

// statFS returns the size and the space available of the filesystem at
// path.
func statFS(path string) (size, free int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	// Block counts are in fragment-size units (statfs(2)); Bsize is the
	// preferred I/O size, which differs on some filesystems (ZFS).
	unit := st.Frsize
	if unit == 0 {
		unit = st.Bsize
	}
	return int64(st.Blocks) * unit, int64(st.Bavail) * unit, nil
}

// dropIngests runs after a collection's sweep over the ingests it kept
// (young, leased or held by a writer): with opts.DropIngests it drops every
// one no writer holds; under a free-space threshold (opts.MinFree, else
// the DB's) it drops them, the least recently written first, until the
// threshold is met. It counts what stays in stats.
func dropIngests(ctx context.Context, bdb *bolt.DB, cfg Config, kept []content.Status, opts Options, stats *gc.Stats, note func(string)) error {
	minFree := cfg.MinFree
	if opts.MinFree != nil {
		minFree = *opts.MinFree
	}
	var candidates []content.Status
	for _, st := range kept {
		if !cfg.Backend.Active(st.Ref) {
			candidates = append(candidates, st)
		}
	}
	// Oldest first: the download nobody wrote to for longest.
	slices.SortStableFunc(candidates, func(a, b content.Status) int {
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return a.StartedAt.Compare(b.StartedAt)
	})
	var (
		root       string
		free, want int64
	)
	if !opts.DropIngests {
		if minFree.IsZero() || len(candidates) == 0 {
			candidates = nil
		} else {
			r, ok := cfg.Backend.(rooter)
			if !ok {
				return fmt.Errorf("free space threshold %s: the content store cannot say where it lives: %w", minFree, errdefs.ErrNotImplemented)
			}
			root = r.Root()
			size, f, err := statFS(root)
			if err != nil {
				return err
			}
			free, want = f, minFree.want(size)
			if free < want {
				cfg.Logger.Info("below the free space threshold: dropping partial downloads, oldest first", "free", free, "min_free", want)
			}
		}
	}
	dropped := map[string]bool{}
	for _, st := range candidates {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !opts.DropIngests && free >= want {
			break
		}
		if !opts.DryRun {
			if err := cfg.Backend.Abort(ctx, st.Ref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				if errors.Is(err, errdefs.ErrUnavailable) {
					continue // a writer took it since
				}
				return fmt.Errorf("drop ingest %q: %w", st.Ref, err)
			}
			if ns, ref, ok := strings.Cut(st.Ref, "/"); ok {
				if err := schema.Translate(bdb.Update(func(tx *bolt.Tx) error { return schema.RemoveIngestRecord(tx, ns, ref) })); err != nil {
					return fmt.Errorf("drop ingest %q: %w", st.Ref, err)
				}
			}
		}
		dropped[st.Ref] = true
		stats.IngestsRemoved++
		stats.BytesFreed += st.Offset
		note("ingest " + st.Ref)
		switch {
		case opts.DropIngests:
		case opts.DryRun:
			free += st.Offset // a dry run cannot measure
		default:
			// Measure again: what a removal frees is rounded to blocks.
			_, f, err := statFS(root)
			if err != nil {
				return err
			}
			free = f
		}
	}
	for _, st := range kept {
		if !dropped[st.Ref] {
			stats.IngestsKept++
			stats.IngestBytesKept += st.Offset
		}
	}
	return nil
}
