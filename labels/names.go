package labels

// The names of the labels strata reads or writes, all in one place. Those
// under containerd.io/ and io.cri-containerd. are containerd's conventions
// (clients such as ctr and crictl set and read them the same way); those
// under strata.io/ and strata. are strata's own. A name ending in "." is a
// prefix: the rest of the label's name says what it is for.
const (
	// GCRoot marks a blob, snapshot or lease as a root of garbage
	// collection; its value (ctr writes a time) is not read.
	GCRoot = "containerd.io/gc.root"
	// GCExpire is the lease label holding the RFC 3339 time after which
	// the lease no longer protects anything and GC removes it.
	GCExpire = "containerd.io/gc.expire"

	// GCRefContent, alone or followed by "." and any suffix, names a
	// label whose value is the digest of a blob the labelled object keeps
	// alive. GC matches it as a bare prefix, as containerd does.
	GCRefContent = "containerd.io/gc.ref.content"
	// GCRefContentPrefix prefixes every GC content reference but the bare
	// GCRefContent itself.
	GCRefContentPrefix = GCRefContent + "."
	// GCRefConfig names the reference of a manifest to its config.
	GCRefConfig = GCRefContentPrefix + "config"
	// GCRefLayerPrefix prefixes the references of a manifest to its
	// layers; the layer's index follows ("containerd.io/gc.ref.content.l.0").
	GCRefLayerPrefix = GCRefContentPrefix + "l."
	// GCRefManifestPrefix prefixes the references of an index to its
	// manifests; the manifest's index follows.
	GCRefManifestPrefix = GCRefContentPrefix + "m."
	// GCRefSnapshotPrefix prefixes the label of a config naming the
	// snapshot its layers were unpacked into; the snapshotter's name
	// follows (optionally with "/" and a suffix), the value is the
	// snapshot's name.
	GCRefSnapshotPrefix = "containerd.io/gc.ref.snapshot."

	// Uncompressed is the label of a layer blob holding its diff ID (the
	// digest of its uncompressed tar).
	Uncompressed = "containerd.io/uncompressed"
	// DistributionSourcePrefix prefixes the label of a blob naming, per
	// registry host (which follows), the repositories it came from,
	// comma-separated.
	DistributionSourcePrefix = "containerd.io/distribution.source."
	// SnapshotRef, on a Prepare, names the committed snapshot (a chain
	// ID) the new active snapshot stands for, so that one another
	// namespace already has can be shared instead of unpacked again.
	SnapshotRef = "containerd.io/snapshot.ref"
	// NamespaceShareable, set to "true" on a namespace, lets other
	// namespaces share its blobs under the isolated content sharing
	// policy.
	NamespaceShareable = "containerd.io/namespace.shareable"

	// CRIManaged marks an image the CRI image service manages, with the
	// value CRIManagedValue, as containerd's CRI plugin does.
	CRIManaged = "io.cri-containerd.image"
	// CRIManagedValue is the value of CRIManaged.
	CRIManagedValue = "managed"
	// CRIPinned marks an image the kubelet must not garbage collect, with
	// the value CRIPinnedValue.
	CRIPinned = "io.cri-containerd.pinned"
	// CRIPinnedValue is the value of CRIPinned.
	CRIPinnedValue = "pinned"

	// MountImage is the label of the snapshot `strata images mount` makes,
	// holding the name of the mounted image.
	MountImage = "strata.io/mount.image"
	// MountPlatform is the label of the snapshot `strata images mount`
	// makes, holding the platform of the mounted image.
	MountPlatform = "strata.io/mount.platform"
	// CreatedBy is the label of a lease the CLI creates, naming the verb
	// that created it.
	CreatedBy = "strata.io/created-by"
	// LeasePull is the label of the lease a pull holds its content under,
	// holding the image reference pulled.
	LeasePull = "strata.pull"
	// LeaseUnpack is the label of the lease an unpack holds its snapshots
	// under, holding the digest of the manifest unpacked.
	LeaseUnpack = "strata.unpack"
	// LeaseImport is the label of the lease an import holds its content
	// under, holding the base name of what is imported.
	LeaseImport = "strata.import"

	// ContainerName is the label of a container `strata run` creates,
	// holding its name, unique in the namespace.
	ContainerName = "strata.io/container.name"
	// ContainerPorts holds the container's published ports, as a JSON
	// list of network.PortMapping.
	ContainerPorts = "strata.io/container.ports"
	// ContainerNetwork names the network the container joins at start:
	// "bridge", "host", "none" or a user-defined network.
	ContainerNetwork = "strata.io/container.network"
	// ContainerVolumes holds the container's volumes and binds, as a JSON
	// list of "SRC:DST[:ro]".
	ContainerVolumes = "strata.io/container.volumes"
	// ContainerStopSignal holds the signal `strata stop` sends first (the
	// image config's StopSignal, SIGTERM by default), as a number.
	ContainerStopSignal = "strata.io/container.stop-signal"
	// ContainerAutoRemove, "true", removes the container once its task
	// exits (--rm).
	ContainerAutoRemove = "strata.io/container.auto-remove"
	// ContainerStartedAt and ContainerFinishedAt hold, in RFC 3339, when
	// the container's task last started and when it last ended.
	ContainerStartedAt  = "strata.io/container.started-at"
	ContainerFinishedAt = "strata.io/container.finished-at"
	// ContainerExitCode holds the exit status of the container's last
	// task, once that task is deleted.
	ContainerExitCode = "strata.io/container.exit-code"
	// ContainerLogURI holds the stdio URI of a detached container's
	// logger (logs.URI): every start of the container without a terminal
	// or attached streams writes its output there.
	ContainerLogURI = "strata.io/container.log-uri"
)
