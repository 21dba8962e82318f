// Package archive applies image layers to directories and writes them back:
// Apply reads a layer stream once (gzip, zstd or plain, by magic bytes),
// hashes its uncompressed bytes (the diff ID) and creates its entries
// confined to the root by openat2(RESOLVE_IN_ROOT), carrying out whiteouts
// the overlay way (0/0 character devices and the opaque xattr, in the layer
// directory) or the native way (on a copied tree); Diff writes the changes
// of a tree over its parent as a layer (WriteDiff, and WriteOverlayDiff
// from an overlay upper directory).
//
// Files by concept: apply.go (the entry loop), files.go (regular files and
// the workers that write small ones), attrs.go (owner, mode, xattrs,
// times), whiteout.go, copyup.go (a lower file copied into the layer, for a
// hard link overlayfs cannot make across layers), lowers.go (what an
// overlay layer takes from the layers below: PruneWhiteouts, InheritDirs,
// LinkLowers), root.go (the confined root and its directory cache),
// compression.go, diff.go.
package archive
