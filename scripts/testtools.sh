#!/usr/bin/env bash
# Builds the client tools the tests drive that Debian does not package at
# the versions we test against, once, into a cache outside the clone
# (STRATA_TEST_TOOLS, default /var/cache/strata-test):
#
#   ctr-v2.4.2/ctr          go install github.com/containerd/containerd/v2/cmd/ctr@v2.4.2
#                           (the client of the transfer and streaming services)
#   containerd-shim-runc-v2-v2.4.2/containerd-shim-runc-v2
#                           go install github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v2.4.2
#                           (a shim speaking task API v3)
#   crictl-v1.37.0/crictl   go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
#   critest-v1.37.0/critest go test -c ./cmd/critest in a writable copy of
#                           the sigs.k8s.io/cri-tools@v1.37.0 module
#   buildkit-v0.35.0/buildkitd, buildctl
#                           go build ./cmd/buildkitd ./cmd/buildctl in a
#                           writable copy of the github.com/moby/buildkit@v0.35.0
#                           module, so its own go.mod (the versions it was
#                           released and tested with) is the main module
#
# Needs only Go and its module proxy; prints nothing for what is there.
# `make deps` runs it. Usage:
# scripts/testtools.sh [ctr|containerd-shim-runc-v2|crictl|critest|buildkit]...
# (default: all)
set -euo pipefail

cache=${STRATA_TEST_TOOLS:-/var/cache/strata-test}
go=${GO:-go}
[ $# -eq 0 ] && set -- ctr containerd-shim-runc-v2 crictl critest buildkit

cri_version=v1.37.0
ctr_version=v2.4.2
buildkit_version=v0.35.0

for tool in "$@"; do
  case "$tool" in
  ctr)
    dir="$cache/ctr-$ctr_version"
    [ -x "$dir/ctr" ] && continue
    echo "testtools: building ctr $ctr_version into $dir" >&2
    mkdir -p "$dir"
    GOBIN="$dir" GOFLAGS=-mod=mod "$go" install "github.com/containerd/containerd/v2/cmd/ctr@$ctr_version"
    ;;
  containerd-shim-runc-v2)
    # containerd 2.4's runc shim: task API v3, to test that strata speaks it
    # (the shim strata installs is Debian's, API v2).
    dir="$cache/containerd-shim-runc-v2-$ctr_version"
    [ -x "$dir/containerd-shim-runc-v2" ] && continue
    echo "testtools: building containerd-shim-runc-v2 $ctr_version into $dir" >&2
    mkdir -p "$dir"
    GOBIN="$dir" GOFLAGS=-mod=mod "$go" install "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$ctr_version"
    ;;
  crictl)
    dir="$cache/crictl-$cri_version"
    [ -x "$dir/crictl" ] && continue
    echo "testtools: building crictl $cri_version into $dir" >&2
    mkdir -p "$dir"
    GOFLAGS=-mod=mod GOBIN="$dir" "$go" install "sigs.k8s.io/cri-tools/cmd/crictl@$cri_version"
    ;;
  critest)
    dir="$cache/critest-$cri_version"
    [ -x "$dir/critest" ] && continue
    echo "testtools: building critest $cri_version into $dir" >&2
    mkdir -p "$dir"
    # The module cache is read-only and `go test -c` wants the module's
    # own go.mod as the main module: build in a copy.
    tmp=$(mktemp -d)
    trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
    modinfo=$(cd "$tmp" && GOFLAGS=-mod=mod "$go" mod download -json "sigs.k8s.io/cri-tools@$cri_version")
    src=$(printf '%s\n' "$modinfo" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src" ] || { echo "testtools: cri-tools $cri_version not downloaded: $modinfo" >&2; exit 1; }
    cp -r "$src" "$tmp/cri-tools"
    chmod -R u+w "$tmp/cri-tools"
    (cd "$tmp/cri-tools" && GOFLAGS=-mod=vendor "$go" test -c -o "$dir/critest.tmp" ./cmd/critest 2>/dev/null ||
      (cd "$tmp/cri-tools" && GOFLAGS=-mod=mod "$go" test -c -o "$dir/critest.tmp" ./cmd/critest))
    mv "$dir/critest.tmp" "$dir/critest"
    chmod -R u+w "$tmp"; rm -rf "$tmp"; trap - EXIT
    ;;
  buildkit)
    dir="$cache/buildkit-$buildkit_version"
    [ -x "$dir/buildkitd" ] && [ -x "$dir/buildctl" ] && continue
    echo "testtools: building buildkitd and buildctl $buildkit_version into $dir" >&2
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
    modinfo=$(cd "$tmp" && GOFLAGS=-mod=mod "$go" mod download -json "github.com/moby/buildkit@$buildkit_version")
    src=$(printf '%s\n' "$modinfo" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src" ] || { echo "testtools: buildkit $buildkit_version not downloaded: $modinfo" >&2; exit 1; }
    cp -r "$src" "$tmp/buildkit"
    chmod -R u+w "$tmp/buildkit"
    for cmd in buildkitd buildctl; do
      # The version BuildKit's release build stamps, which --version and
      # buildctl debug info report.
      (cd "$tmp/buildkit" && GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" build -trimpath \
        -ldflags "-X github.com/moby/buildkit/version.Version=$buildkit_version" -o "$dir/$cmd.tmp" "./cmd/$cmd")
      mv "$dir/$cmd.tmp" "$dir/$cmd"
    done
    chmod -R u+w "$tmp"; rm -rf "$tmp"; trap - EXIT
    ;;
  *)
    echo "testtools: unknown tool $tool (want ctr, containerd-shim-runc-v2, crictl, critest or buildkit)" >&2
    exit 2
    ;;
  esac
done
