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

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init transfer "$@"

"$BENCH_DIR/compare.sh" -n "$RUNS" -i "$IMAGES" -b c24t-igzip "${OUT[@]}" c24t-igzip \
  "ctr24={c2bin}/ctr -a $SOCK -n default images pull --plain-http {ref}" \
  --setup "ctr24=$STRATAD_SETUP" --pid "ctr24=cat {base}/pid" --prep "ctr24=$STRATAD_PREP" --teardown "ctr24=$STRATAD_TEARDOWN" \
  "stratad=$S --address $SOCK pull --plain-http {ref}" \
  --setup "stratad=$STRATAD_SETUP" --pid "stratad=cat {base}/pid" --prep "stratad=$STRATAD_PREP" --teardown "stratad=$STRATAD_TEARDOWN"
