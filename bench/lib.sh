# Sourced by the bench/*.sh scripts that compare strata candidates with
# ../shared/bench/compare.sh: their options, the strata binaries of this
# checkout, and the hooks of a stratad candidate.
#
#   bench_init NAME "$@"   parses -n RUNS -i "IMAGES" -o OUTDIR into RUNS, IMAGES and OUT (an
#                          array to pass on), builds strata and stratad into a temp dir removed
#                          at exit (S = the strata binary), and sets BENCH_DIR and SOCK
#   STRATAD_SETUP, STRATAD_PREP, STRATAD_TEARDOWN
#                          compare.sh hooks of a stratad on {base}: started once with its own
#                          root and state, emptied and checked empty before every run (so every
#                          pull is cold), stopped at the end; its pid is in {base}/pid
# Run compare.sh as a child, not with exec: exec would drop the exit trap that removes the binaries.

bench_init() {
  local name=$1
  shift
  local here repo
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  repo=$(cd "$here/.." && pwd)
  BENCH_DIR=${BENCH_DIR:-$(cd "$repo/../shared/bench" && pwd)}
  RUNS=5
  IMAGES="debian:minbase debian:fat debian:fat-zstd synthetic:smallfiles synthetic:bigfile"
  OUT=()
  local opt OPTIND=1
  while getopts "n:i:o:" opt; do
    case $opt in
      n) RUNS=$OPTARG ;;
      i) IMAGES=$OPTARG ;;
      o) OUT=(-o "$OPTARG") ;;
      *) echo "usage: $0 [-n RUNS] [-i IMAGES] [-o OUTDIR]" >&2; exit 2 ;;
    esac
  done
  BENCH_BIN=$(mktemp -d "/tmp/strata-$name-bench.XXXXXX")
  trap 'rm -rf "$BENCH_BIN"' EXIT
  (cd "$repo" && go build -trimpath -o "$BENCH_BIN/strata" ./cmd/strata && go build -trimpath -o "$BENCH_BIN/stratad" ./cmd/stratad)
  S="$BENCH_BIN/strata"
  SOCK="{base}/strata.sock"
  # The daemon logs to {base}/stratad.log; --config names an empty file (a missing one is an error).
  STRATAD_SETUP="touch {base}/empty.toml; $BENCH_BIN/stratad --config {base}/empty.toml --root {base}/root --state {base}/state --address $SOCK >{base}/stratad.log 2>&1 & echo \$! > {base}/pid; for i in \$(seq 100); do $S --address $SOCK namespaces ls >/dev/null 2>&1 && break; sleep 0.1; done"
  # Empty, then check empty: a pull that found its blobs or snapshots would not be cold.
  STRATAD_PREP="$S --address $SOCK -n default images prune --all --force >/dev/null && $S --address $SOCK gc >/dev/null && test -z \"\$($S --address $SOCK -n default content ls -q)\$($S --address $SOCK -n default snapshots ls -q)\""
  STRATAD_TEARDOWN="kill \$(cat {base}/pid); while kill -0 \$(cat {base}/pid) 2>/dev/null; do sleep 0.1; done"
}
