// Package metadata keeps strata's records in a bbolt database
// (<root>/metadata.db): namespaces, images, leases, the per-namespace view of
// content and snapshots, and the garbage collector that frees what no root
// reaches.
//
// Blobs are stored once on disk by the content backend (content/local);
// each namespace has its own record of the blobs it can see, with its own
// labels. Under the "shared" policy (SharingPolicy, containerd's default) a
// writer for a blob on disk is complete at once and its commit adds the
// record without reading the data; under "isolated" the namespace sends the
// bytes, unless a namespace labelled containerd.io/namespace.shareable=true
// has the blob.
//
// Buckets (TestBucketLayout keeps this tree true):
//
//	v1                                  schema version 1
//	  version      -> uint64            schema version, migrated on open
//	  <namespace>
//	    labels/<key>       -> value
//	    content
//	      blob/<digest>
//	        createdat, updatedat -> time
//	        size   -> varint
//	        labels/<key> -> value
//	      ingests/<ref>
//	        ref      -> backend ingest ref ("<namespace>/<ref>")
//	        expected -> digest, when given
//	    images/<name>
//	      createdat, updatedat -> time
//	      target
//	        digest, mediatype -> string
//	        size -> varint
//	        annotations/<key> -> value
//	      labels/<key> -> value
//	    containers/<id>
//	      createdat, updatedat -> time
//	      image, snapshotter, snapshotkey, sandboxid -> string
//	      spec -> Any (protobuf)
//	      runtime
//	        name    -> string
//	        options -> Any (protobuf)
//	      labels/<key> -> value
//	      extensions/<key> -> Any (protobuf)
//	    leases/<id>
//	      createdat -> time
//	      labels/<key> -> value
//	      content/<digest>
//	      ingests/<ref>
//	      snapshots/<snapshotter>/<key>
//	    snapshots/<snapshotter>/<key>
//	      name   -> backend snapshot key, "<namespace>/<seq>/<key>"
//	      parent -> key of the parent
//	      createdat, updatedat -> time
//	      labels/<key> -> value
//	      children/<key>
//
// Garbage collection marks from the roots (images, containers, unexpired
// leases, objects labelled containerd.io/gc.root) along the edges (image
// targets, a container's snapshotter/snapshotkey,
// containerd.io/gc.ref.content.* and containerd.io/gc.ref.snapshot.<snapshotter>*
// labels, snapshot parents; never what a manifest names, as in containerd), then
// removes unmarked records, expired leases, stale ingests, blobs no
// namespace refers to, and backend snapshots no namespace refers to
// (children before parents). It holds the database's write lock, so no
// commit can slip between the mark and the sweep.
//
// Snapshots: DB.Snapshotter(name) is the namespaced view of a backend
// registered with WithSnapshotter. Keys are per namespace; each record
// names its backend snapshot ("<namespace>/<seq>/<key>"), and no two
// namespaces ever share one: a snapshot cannot be verified from its name,
// so a Prepare carrying the containerd.io/snapshot.ref label of a layer
// returns errdefs.ErrAlreadyExists only when the caller's own namespace has
// it, as containerd's does; otherwise the caller applies the layer itself.
package metadata
