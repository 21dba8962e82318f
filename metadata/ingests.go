package metadata

import (
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/metadata/collect"
)

// MinFree is the free space a collection keeps on the content store's
// filesystem by dropping partial downloads; see package metadata/collect.
type MinFree = collect.MinFree

// ParseMinFree reads a free-space threshold: a percentage ("10%") or a
// size in bytes with an optional unit ("500MB", "2GiB", "1048576"). It
// returns errdefs.ErrInvalidArgument for anything else.
func ParseMinFree(s string) (MinFree, error) { return collect.ParseMinFree(s) }

// WithMinFree makes every collection drop partial downloads, the least
// recently written first, while the content store's filesystem has less
// free space than m (zero: never). Only ingests no writer holds are
// dropped, whatever their age or lease: they are resumable, nothing more.
func WithMinFree(m MinFree) Opt {
	return func(o *options) error {
		if m.Bytes < 0 || m.Percent < 0 || m.Percent >= 100 {
			return fmt.Errorf("min free %+v: %w", m, errdefs.ErrInvalidArgument)
		}
		o.minFree = m
		return nil
	}
}
