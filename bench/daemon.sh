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

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init daemon "$@"

"$BENCH_DIR/compare.sh" -n "$RUNS" -i "$IMAGES" -b strata "${OUT[@]}" \
  "strata=$S --root {root} pull --plain-http {ref}" \
  "stratad=$S --address $SOCK pull --plain-http {ref}" \
  --setup "stratad=$STRATAD_SETUP" --pid "stratad=cat {base}/pid" --prep "stratad=$STRATAD_PREP" --teardown "stratad=$STRATAD_TEARDOWN"
