#!/usr/bin/env bash
# Pulling through stratad against pulling in-process (issue 6: client mode costs at most 10% more
# wall time than embedded mode), on the corpus of ../shared/bench/mkimages.sh.
#
#   bench/daemon.sh [-n RUNS] [-i "IMAGES"] [-o OUTDIR]
#
# Builds strata and stratad from this checkout, then runs ../shared/bench/compare.sh (cold pulls,
# caches dropped, candidates interleaved and rotated, roots on a fresh journaled ext4 on a loop
# device) with two candidates:
#   strata    strata --root {root} pull --plain-http {ref}: embedded, a fresh store every run
#   stratad   strata --address SOCK pull --plain-http {ref}: the pull runs in a stratad started
#             once (setup hook) on {base}/root; before every run the daemon's store is emptied
#             (images prune --all, then gc, both through the socket, untimed) so every pull is cold.
#             The daemon's CPU and peak RSS are measured through compare.sh's --pid hook.
# The table's ratio column divides by strata (embedded): the target is stratad <= 1.10.
# Env: BENCH_DIR (../shared/bench beside the checkout), BENCH_DATA, and compare.sh's.
# Run as root; the registry is started by compare.sh if it is not running.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$(cd "$REPO/../shared/bench" && pwd)}
RUNS=5
IMAGES="debian:minbase debian:fat debian:fat-zstd synthetic:smallfiles synthetic:bigfile"
OUT=()
while getopts "n:i:o:" opt; do
  case $opt in
    n) RUNS=$OPTARG ;;
    i) IMAGES=$OPTARG ;;
    o) OUT=(-o "$OPTARG") ;;
    *) echo "usage: $0 [-n RUNS] [-i IMAGES] [-o OUTDIR]" >&2; exit 2 ;;
  esac
done

BIN=$(mktemp -d /tmp/strata-daemon-bench.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
(cd "$REPO" && go build -trimpath -o "$BIN/strata" ./cmd/strata && go build -trimpath -o "$BIN/stratad" ./cmd/stratad)

S="$BIN/strata"
SOCK="{base}/strata.sock"
# The daemon logs to {base}/stratad.log; the config file is left out (--config of a file that
# does not exist is an error, so point it at an empty one).
SETUP="touch {base}/empty.toml; $BIN/stratad --config {base}/empty.toml --root {base}/root --state {base}/state --address $SOCK >{base}/stratad.log 2>&1 & echo \$! > {base}/pid; for i in \$(seq 100); do $S --address $SOCK namespaces ls >/dev/null 2>&1 && break; sleep 0.1; done"
# Empty, then check empty: a pull that found its blobs or snapshots would not be cold.
PREP="$S --address $SOCK -n default images prune --all --force >/dev/null && $S --address $SOCK gc >/dev/null && test -z \"\$($S --address $SOCK -n default content ls -q)\$($S --address $SOCK -n default snapshots ls -q)\""
TEARDOWN="kill \$(cat {base}/pid); while kill -0 \$(cat {base}/pid) 2>/dev/null; do sleep 0.1; done"

exec "$BENCH_DIR/compare.sh" -n "$RUNS" -i "$IMAGES" -b strata "${OUT[@]}" \
  "strata=$S --root {root} pull --plain-http {ref}" \
  "stratad=$S --address $SOCK pull --plain-http {ref}" \
  --setup "stratad=$SETUP" --pid "stratad=cat {base}/pid" --prep "stratad=$PREP" --teardown "stratad=$TEARDOWN"
