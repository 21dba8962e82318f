#!/usr/bin/env bash
# Builds the Kubernetes tools the CRI tests drive, once, into a cache
# outside the clone (STRATA_TESTTOOLS, default /var/cache/strata-test):
#
#   crictl-v1.37.0/crictl   go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
#   critest-v1.37.0/critest go test -c ./cmd/critest in a writable copy of
#                           the sigs.k8s.io/cri-tools@v1.37.0 module
#
# Needs only Go and its module proxy. Prints nothing when both are there.
# Usage: scripts/testtools.sh [crictl|critest]...   (default: both)
set -euo pipefail

version=v1.37.0
cache=${STRATA_TESTTOOLS:-/var/cache/strata-test}
go=${GO:-go}
[ $# -eq 0 ] && set -- crictl critest

for tool in "$@"; do
  dir="$cache/$tool-$version"
  [ -x "$dir/$tool" ] && continue
  mkdir -p "$dir"
  case "$tool" in
  crictl)
    echo "testtools: building crictl $version into $dir" >&2
    GOFLAGS=-mod=mod GOBIN="$dir" "$go" install "sigs.k8s.io/cri-tools/cmd/crictl@$version"
    ;;
  critest)
    echo "testtools: building critest $version into $dir" >&2
    # The module cache is read-only and `go test -c` wants the module's
    # own go.mod as the main module: build in a copy.
    tmp=$(mktemp -d)
    trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
    modinfo=$(cd "$tmp" && GOFLAGS=-mod=mod "$go" mod download -json "sigs.k8s.io/cri-tools@$version")
    src=$(printf '%s\n' "$modinfo" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src" ] || { echo "testtools: cri-tools $version not downloaded: $modinfo" >&2; exit 1; }
    cp -r "$src" "$tmp/cri-tools"
    chmod -R u+w "$tmp/cri-tools"
    (cd "$tmp/cri-tools" && GOFLAGS=-mod=vendor "$go" test -c -o "$dir/critest.tmp" ./cmd/critest 2>/dev/null ||
      (cd "$tmp/cri-tools" && GOFLAGS=-mod=mod "$go" test -c -o "$dir/critest.tmp" ./cmd/critest))
    mv "$dir/critest.tmp" "$dir/critest"
    chmod -R u+w "$tmp"; rm -rf "$tmp"; trap - EXIT
    ;;
  *)
    echo "testtools: unknown tool $tool (want crictl or critest)" >&2
    exit 2
    ;;
  esac
done
