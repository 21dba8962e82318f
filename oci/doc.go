// Package oci builds the OCI runtime spec (config.json) of a container from
// its image's config and docker-run-like options, with the ecosystem's safe
// defaults: docker's capability set, moby's default seccomp profile, masked
// and read-only /proc and /sys paths, a device allowlist, no_new_privileges.
// --privileged lifts all of them.
//
// The spec is built with the runtime-spec types directly rather than with a
// generator library: runtime-tools' generate package has had no release since
// 2019 and defaults to a different capability set and mounts, and containerd's
// pkg/oci would pull the whole containerd module in for a few hundred lines
// whose defaults (docker's) are the point of this package.
//
// Generate is the one entry point:
//
//	spec, err := oci.Generate(ctx, oci.Options{
//		ID:     id,
//		Rootfs: "/run/strata/bundles/<id>/rootfs", // mounted; /etc/passwd is read from it
//		Image:  imageConfig.Config,
//		Args:   []string{"sh", "-c", "id"},
//		User:   "app",
//		Memory: 64 << 20,
//	})
//	stop, err := oci.StopSignal(imageConfig.Config) // for `strata stop`
//
// The user and groups are resolved in the rootfs's /etc/passwd and /etc/group,
// opened with openat2(RESOLVE_IN_ROOT): a symlink in a hostile image resolves
// inside the rootfs, never to the host's files.
package oci
