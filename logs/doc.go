// Package logs keeps the stdout and stderr of detached containers in
// docker's json-file format, one file per container with size-bounded
// rotation, and reads them back for `strata logs [-f] [--tail N]`.
//
// The runc shim writes nothing itself: a container created with the stdio
// URI that URI returns (binary:///path/to/strata?logger=<config>) makes the
// shim start `strata logger <config>` with the container's stdout and
// stderr pipes as fds 3 and 4 and a pipe as fd 5 that says "ready" when
// closed (containerd's binary logging protocol,
// cmd/containerd-shim-runc-v2/process/io.go). Serve is that process's
// work: one JSON object per line,
//
//	{"log":"hello\n","stream":"stdout","time":"2026-12-07T01:02:03.123456789Z"}
//
// lines longer than 16 KiB split as docker splits them (no trailing
// newline but in the last piece), then, when both pipes are closed (the
// container and its execs are gone), the file "done" beside the log: a
// follower stops once it has read everything before it.
//
// On disk, under the store root:
//
//	<root>/logs/<namespace>/<container-id>/
//	  json.log          the current file
//	  json.log.1 … .N   older ones, json.log.1 the newest (max-file - 1 of them)
//	  done              present once the logger has written its last line
package logs
