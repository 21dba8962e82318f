// Package v2 runs tasks under containerd's runtime v2 shims, as containerd
// does, so that any shim written for containerd (runc v2, kata, runsc,
// runwasi) works under strata unchanged.
//
// A task is one container's processes under one shim process. The shim
// binary comes from the container's runtime name: io.containerd.<name>.<version>
// is containerd-shim-<name>-<version> on PATH (an absolute path names the
// binary itself). Per task the manager makes a bundle directory, starts
// the shim in it with containerd's arguments and environment
//
//	containerd-shim-runc-v2 -namespace NS -address GRPC -publish-binary BIN -id ID start
//	(cwd the bundle; TTRPC_ADDRESS, GRPC_ADDRESS, NAMESPACE, MAX_SHIM_VERSION)
//
// in a process group of its own, so that it outlives stratad, and reads
// its answer: a plain address (shims of containerd 1.x), JSON or protobuf
// bootstrap parameters {version, address, protocol} (containerd 2.x). It
// then speaks the task API over ttrpc: version 2 (containerd.task.v2.Task)
// or 3 (containerd.task.v3.Task, the same messages under another name), as
// the answer says. The rootfs mounts go to the shim in the Create request
// and the shim mounts them at the bundle's rootfs, as with containerd.
//
// Shims publish their events (/tasks/create, /tasks/exit, ...) to the
// ttrpc events service the manager serves at TTRPC_ADDRESS (the daemon's
// gRPC socket path + ".ttrpc"); the manager hands them to the daemon's
// exchange.
//
// On disk, under the state directory (lost on reboot):
//
//	<state>/
//	  <namespace>/<id>/     the bundle (the shim's working directory)
//	    config.json         the OCI spec of the container
//	    rootfs/             mounted by the shim from the Create request
//	    log                 FIFO: the shim's log, copied to the daemon's
//	    shim.json           how to reach the shim again: runtime, binary,
//	                        bootstrap answer (written once the shim answered)
//	    exit-published      the exit of a task that ended while no daemon
//	                        was listening has been published
//	    address, options.json, ...   the shim's own files
//
// After a restart, Load reconnects to every shim a bundle names; a bundle
// whose shim is gone is cleaned up with the shim's own `delete` command
// (which unmounts the rootfs and reports the exit), its exit published,
// and the bundle removed. Close leaves the shims running.
package v2
