#!/usr/bin/env bash
# Builds the client tools the tests drive that Debian does not package at
# the versions we test against, into /var/cache/strata-test/<tool>-<version>/
# (STRATA_TEST_TOOLS overrides the directory); a no-op for what is there.
# Needs only Go and the Go module proxy. `make deps` runs it; tests that
# need a tool say which command to run when it is missing.
# Each tool has a self-contained block below.
set -euo pipefail
cache=${STRATA_TEST_TOOLS:-/var/cache/strata-test}
go=${GO:-go}

# ctr of containerd 2.4: the client of the transfer and streaming services
# (cmd/strata and server tests run it against stratad).
ctr_version=v2.4.2
if [ ! -x "$cache/ctr-$ctr_version/ctr" ]; then
  echo "testtools: building ctr $ctr_version into $cache/ctr-$ctr_version" >&2
  mkdir -p "$cache/ctr-$ctr_version"
  GOBIN="$cache/ctr-$ctr_version" GOFLAGS=-mod=mod "$go" install "github.com/containerd/containerd/v2/cmd/ctr@$ctr_version"
fi
