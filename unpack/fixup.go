package unpack

import (
	"context"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/mount"
)

// fixUp finishes a layer unpacked on nothing once its parents exist: it
// makes the hard links to the parents' files (copied up), removes
// whiteouts that hide nothing in them (overlayfs would list them in
// directories it does not merge) and gives directories made for missing
// parents the attributes the parents have.
func (pn *Plan) fixUp(ctx context.Context, mounts []mount.Mount, parent string, res archive.ApplyResult) error {
	t, err := diff.WritableTarget(mounts)
	if err != nil {
		return err
	}
	probe := "prune-" + randomKey()
	pm, err := pn.sn.Prepare(ctx, probe, parent)
	if err != nil {
		return err
	}
	defer pn.sn.Remove(context.WithoutCancel(ctx), probe)
	pt, err := diff.WritableTarget(pm)
	if err != nil {
		return err
	}
	lowers := pt.Lowers
	if !pt.Overlay {
		lowers = []string{pt.Dir}
	}
	if err := archive.LinkLowers(t.Dir, res.LowerLinks, lowers, t.XattrPrefix); err != nil {
		return err
	}
	if err := archive.PruneWhiteouts(t.Dir, res.Whiteouts, lowers, t.XattrPrefix); err != nil {
		return err
	}
	return archive.InheritDirs(t.Dir, res.ImplicitDirs, lowers, t.XattrPrefix)
}
