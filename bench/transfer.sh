#!/usr/bin/env bash
# containerd 2.4's ctr pulling through stratad's transfer service (issue 16), against containerd
# 2.4 tuned with igzip (c24t-igzip) and against strata's own client pulling through the same kind
# of daemon (the jobs service): the target is ctr24 <= 1.10 x stratad, and faster than
# c24t-igzip on every image. On the corpus of ../shared/bench/mkimages.sh.
#
#   bench/transfer.sh [-n RUNS] [-i "IMAGES"] [-o OUTDIR]
#
# Builds strata and stratad from this checkout, then runs ../shared/bench/compare.sh (cold pulls,
# caches dropped, candidates interleaved and rotated) with three candidates:
#   c24t-igzip  compare.sh's built-in (run ../shared/bench/setup-c2.sh first)
#   ctr24       {c2bin}/ctr images pull --plain-http {ref} against a stratad of its own: ctr 2.4's
#               default path, the transfer service
#   stratad     strata --address SOCK pull --plain-http {ref} against another stratad: the jobs
#               service, as bench/daemon.sh
# Each daemon is started once and emptied before every run (untimed), then checked empty.
# Env: BENCH_DIR (../shared/bench beside the checkout), BENCH_DATA, and compare.sh's.
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

BIN=$(mktemp -d /tmp/strata-transfer-bench.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
(cd "$REPO" && go build -trimpath -o "$BIN/strata" ./cmd/strata && go build -trimpath -o "$BIN/stratad" ./cmd/stratad)

S="$BIN/strata"
SOCK="{base}/strata.sock"
SETUP="touch {base}/empty.toml; $BIN/stratad --config {base}/empty.toml --root {base}/root --state {base}/state --address $SOCK >{base}/stratad.log 2>&1 & echo \$! > {base}/pid; for i in \$(seq 100); do $S --address $SOCK namespaces ls >/dev/null 2>&1 && break; sleep 0.1; done"
PREP="$S --address $SOCK -n default images prune --all --force >/dev/null && $S --address $SOCK gc >/dev/null && test -z \"\$($S --address $SOCK -n default content ls -q)\$($S --address $SOCK -n default snapshots ls -q)\""
TEARDOWN="kill \$(cat {base}/pid); while kill -0 \$(cat {base}/pid) 2>/dev/null; do sleep 0.1; done"

exec "$BENCH_DIR/compare.sh" -n "$RUNS" -i "$IMAGES" -b c24t-igzip "${OUT[@]}" c24t-igzip \
  "ctr24={c2bin}/ctr -a $SOCK -n default images pull --plain-http {ref}" \
  --setup "ctr24=$SETUP" --pid "ctr24=cat {base}/pid" --prep "ctr24=$PREP" --teardown "ctr24=$TEARDOWN" \
  "stratad=$S --address $SOCK pull --plain-http {ref}" \
  --setup "stratad=$SETUP" --pid "stratad=cat {base}/pid" --prep "stratad=$PREP" --teardown "stratad=$TEARDOWN"
