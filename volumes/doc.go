// Package volumes keeps named volumes under the store root, as docker's
// local volume driver does: a directory per volume that containers bind
// mount, made by `strata volume create` or on first use by `-v NAME:/dst`,
// and filled, the first time a container mounts it, with what the
// container's image has at the mount point (owners, modes, xattrs,
// symlinks, hard links and device nodes kept; a hostile image's symlinks
// are copied as symlinks, never followed, so the copy reads and writes
// nothing outside the image's root and the volume).
//
// The lifecycle of a volume:
//
//	s, _ := volumes.New("/var/lib/strata/volumes", volumes.WithInUse(inUse))
//	m, err := s.Bind(ctx, "data:/var/lib/db:ro", rootfs, volumes.BindOptions{Create: true})
//	// m goes into oci.Options.Mounts; rootfs is where the container's root
//	// filesystem is mounted, read once to populate a new volume.
//	…
//	err = s.Remove(ctx, "data") // ErrFailedPrecondition while inUse names it
//
// On disk:
//
//	<root>/                  <store root>/volumes
//	  lock                   flock held by every change
//	  <name>/
//	    volume.json          name, created, labels, anonymous, whether to copy up
//	    _data/               what containers mount
//
// A volume's record is written after its _data directory and removed
// before it, so a directory without volume.json is half made or half
// removed: List skips it and Create or Remove finishes it.
package volumes
