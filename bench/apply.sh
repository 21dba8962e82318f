#!/usr/bin/env bash
# strata's layer apply against GNU tar, on the same blobs, the same filesystem, interleaved
# (issue 3: target strata <= 0.8x GNU tar's wall time on each layer, peak RSS < 64 MiB).
#
#   bench/apply.sh [-n ROUNDS] [-o OUTDIR] [-x NAME=COMMAND]... [LAYER...]
#
# LAYER: layer blobs (.tar, .tar.gz, .tar.zst). Default: the three layers of the corpus of
# ../shared/bench/mkimages.sh, found through $BENCH_DATA/images.tsv: debian:minbase (layer 0),
# synthetic:smallfiles, synthetic:bigfile.
#
# Candidates, each timed by GNU time (/usr/bin/time -f '%e %M %U %S': wall s, peak RSS KiB,
# user and system CPU s of the process and its children):
#   tar     GNU tar: tar -xzf LAYER --numeric-owner -C DIR   (-I zstd for .zst, nothing for .tar);
#           tar runs gzip -d as a separate process, so it decompresses on the other core
#   strata  archive.Apply (overlay whiteout mode) in a process of its own: the test binary of
#           ./archive, whose TestMain applies $STRATA_APPLY_FILE into $STRATA_APPLY_DIR when both
#           are set (archive/applybench_test.go); built here with `go test -c` unless
#           $APPLYBENCH names a binary
#   -x NAME=COMMAND  more candidates run like strata (COMMAND gets STRATA_APPLY_FILE and
#           STRATA_APPLY_DIR in its environment and prints the diff ID first), e.g. an optimised
#           build: -x opt=/tmp/applybench-opt; extra rows compare them with tar and with strata
# Every run writes into a fresh empty directory on one fresh journaled ext4 on a loop device
# (direct I/O, sparse image under /tmp, removed at exit; the same setup as compare.sh). Before
# each run the previous round's directory of that layer and candidate is removed and `sync` run,
# and after each run `sync` again, all outside the timing (writeback of one run does not land in
# the next). Page cache is not dropped (the blob is read from memory by both) unless DROP_CACHES=1.
# Candidate order rotates per round (tar first on odd rounds, strata first on even ones when
# there are two). After the first round each strata-like tree is compared with tar's: type, mode, size, owner, link
# count, symlink target and mtime of every entry, sha256 of every regular file, and strata's diff
# ID against images.tsv.
#
# Output: a table on stdout (medians, ratio, peak RSS) and OUTDIR (default
# $BENCH_DATA/apply/<UTC date>) with results.tsv (one row per run), verify/, table.txt, env.txt.
# Env: ROUNDS (5), BENCH_DATA (/tmp/bench-data), APPLYBENCH, DROP_CACHES (0),
#      APPLY_FS_IMG (/tmp/strata-apply-fs.img), APPLY_FS_MNT (/tmp/strata-apply-fs), APPLY_FS_SIZE (20G)
# Run as root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DATA=${BENCH_DATA:-/tmp/bench-data}
ROUNDS=${ROUNDS:-5}
OUTDIR=""
FSIMG=${APPLY_FS_IMG:-/tmp/strata-apply-fs.img}
FSMNT=${APPLY_FS_MNT:-/tmp/strata-apply-fs}
FSSIZE=${APPLY_FS_SIZE:-20G}
DROP_CACHES=${DROP_CACHES:-0}

log() { echo "[apply $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

declare -a CANDS=(tar strata)
declare -A XCMD=()
while getopts "n:o:x:h" o; do
  case $o in
    n) ROUNDS=$OPTARG ;;
    o) OUTDIR=$OPTARG ;;
    x) [[ ${OPTARG%%=*} =~ ^[A-Za-z0-9._-]+$ ]] && [ "${OPTARG%%=*}" != tar ] && [ "${OPTARG%%=*}" != strata ] &&
         [ -n "${OPTARG#*=}" ] || die "bad -x $OPTARG (NAME=COMMAND)"
       CANDS+=("${OPTARG%%=*}"); XCMD[${OPTARG%%=*}]=${OPTARG#*=} ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

[ "$(id -u)" = 0 ] || die "run as root (ownership, device nodes, loop device)"
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is missing: apt-get install time"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad round count: $ROUNDS"

# ------------------------------------------------------------------ layers
TSVIMG=$DATA/images.tsv
blob_of() { # IMAGE LAYER -> blob path from images.tsv
  awk -F'\t' -v i="$1" -v l="$2" 'NR > 1 && $1 == i && $2 == l { print $5; exit }' "$TSVIMG" 2>/dev/null
}
diffid_of() { # BLOB -> diff ID from images.tsv
  awk -F'\t' -v b="$1" 'NR > 1 && $5 == b { print $9; exit }' "$TSVIMG" 2>/dev/null
}
declare -a LAYERS=()
if [ $# -gt 0 ]; then
  LAYERS=("$@")
else
  for spec in "debian:minbase 0 minbase.tar.gz" "synthetic:smallfiles 0 smallfiles.tar.gz" "synthetic:bigfile 0 bigfile.tar.gz"; do
    read -r img l fallback <<<"$spec"
    b=$(blob_of "$img" "$l")
    [ -n "$b" ] || b=$DATA/layers/$fallback
    LAYERS+=("$b")
  done
fi
for l in "${LAYERS[@]}"; do [ -s "$l" ] || die "no layer blob $l (run ../shared/bench/mkimages.sh)"; done
declare -A NAME=()
for l in "${LAYERS[@]}"; do
  n=$(basename "$l"); n=${n%.gz}; n=${n%.zst}; n=${n%.tar}
  case $l in *.zst) n=$n.zst ;; esac
  NAME[$l]=$n
done

# ------------------------------------------------------------------ strata's applier binary
if [ -z "${APPLYBENCH:-}" ]; then
  APPLYBENCH=/tmp/applybench
  log "building $APPLYBENCH (go test -c ./archive)"
  (cd "$REPO" && go test -c -o "$APPLYBENCH" ./archive) || die "go test -c failed"
fi
[ -x "$APPLYBENCH" ] || die "no applier binary $APPLYBENCH"

# ------------------------------------------------------------------ one at a time, nothing else heavy
exec 8>/tmp/strata-apply-bench.lock
flock -n 8 || die "another bench/apply.sh is running"
busy=$(pgrep -f '(peer|mkimages|compare)\.sh' | tr '\n' ' ')
[ -z "$busy" ] || die "a shared benchmark script is running (pids $busy): wait for it"

OUTDIR=${OUTDIR:-$DATA/apply/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR/verify" || die "cannot create $OUTDIR"
RES=$OUTDIR/results.tsv
printf 'layer\tcandidate\tround\twall_s\tmaxrss_kb\tuser_s\tsys_s\trc\tload1\n' > "$RES"
{
  echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"; echo "cpus: $(nproc)"
  echo "tar: $(tar --version | head -1)"; echo "gzip: $(gzip --version | head -1)"
  echo "go: $(go version 2>/dev/null)"; echo "strata: $(git -C "$REPO" describe --always --dirty 2>/dev/null)"
  echo "applybench: $APPLYBENCH"; echo "rounds: $ROUNDS"; echo "drop_caches: $DROP_CACHES"
  for l in "${LAYERS[@]}"; do echo "layer: ${NAME[$l]} $l $(stat -c %s "$l") bytes"; done
  for c in "${!XCMD[@]}"; do echo "candidate: $c = ${XCMD[$c]}"; done
} > "$OUTDIR/env.txt"

# ------------------------------------------------------------------ the benchmark filesystem
fs_down() {
  if mountpoint -q "$FSMNT"; then umount "$FSMNT" || umount -l "$FSMNT"; fi
  if [ -s "$FSIMG.loopdev" ]; then losetup -d "$(cat "$FSIMG.loopdev")" 2>/dev/null; rm -f "$FSIMG.loopdev"; fi
  rm -f "$FSIMG"
  return 0
}
fs_up() {
  fs_down
  truncate -s "$FSSIZE" "$FSIMG" || die "truncate $FSIMG failed"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$FSIMG" || die "mkfs failed"
  local dev
  dev=$(losetup -f --show --direct-io=on "$FSIMG") || die "losetup failed"
  echo "$dev" > "$FSIMG.loopdev"
  mkdir -p "$FSMNT" && mount "$dev" "$FSMNT" || die "mount $dev failed"
  echo "fs: ext4 (journal) on $dev (direct-io), $FSSIZE sparse image $FSIMG" >> "$OUTDIR/env.txt"
}
trap 'fs_down; log "bench fs removed; results in $OUTDIR"' EXIT
trap 'exit 130' INT TERM
fs_up
W=$FSMNT/run

settle() { sync; if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }

# run_one LAYER CAND ROUND : time one extraction into a fresh dir
run_one() {
  local l=$1 c=$2 r=$3 d tf rc
  d=$W/${NAME[$l]}/$c
  rm -rf "$d"; mkdir -p "$d"; settle
  tf=$OUTDIR/time.tmp
  case $c in
    tar)
      local z=(-z)
      case $(head -c4 "$l" | od -An -tx1 | tr -d ' \n') in
        1f8b08*) z=(-z) ;; 28b52ffd) z=(-I zstd) ;; *) z=() ;;
      esac
      /usr/bin/time -f '%e %M %U %S' -o "$tf" tar "${z[@]}" -x --numeric-owner -f "$l" -C "$d" \
        > "$OUTDIR/out.tmp" 2>&1 ;;
    strata)
      STRATA_APPLY_FILE=$l STRATA_APPLY_DIR=$d /usr/bin/time -f '%e %M %U %S' -o "$tf" "$APPLYBENCH" \
        > "$OUTDIR/out.tmp" 2>&1 ;;
    *)
      STRATA_APPLY_FILE=$l STRATA_APPLY_DIR=$d /usr/bin/time -f '%e %M %U %S' -o "$tf" bash -c "exec ${XCMD[$c]}" \
        > "$OUTDIR/out.tmp" 2>&1 ;;
  esac
  rc=$?
  if [ $rc != 0 ]; then log "$c on ${NAME[$l]} (round $r) failed, rc=$rc:"; tail -5 "$OUTDIR/out.tmp" >&2; fi
  [ "$c" != tar ] && [ "$r" = 1 ] && cp "$OUTDIR/out.tmp" "$OUTDIR/verify/${NAME[$l]}.$c-out"
  read -r wall rss usr sys < <(grep -E '^[0-9.]+ [0-9]+ ' "$tf" | tail -1)
  printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n' "${NAME[$l]}" "$c" "$r" "${wall:-NA}" "${rss:-NA}" "${usr:-NA}" "${sys:-NA}" \
    "$rc" "$(cut -d' ' -f1 /proc/loadavg)" >> "$RES"
  sync  # this run's writeback must not land in the next one's timing
  log "round $r ${NAME[$l]} $c: ${wall:-?} s, $((${rss:-0} / 1024)) MiB"
}

# mtimes LAYER V : compare the mtimes of the two trees (not the root, which the layers do not
# name) and, where they differ, both against the archive's headers; appends to detail/ok of verify
mtimes() {
  local l=$1 v=$2 x=$3 ndiff z=-z
  case $(head -c4 "$l" | od -An -tx1 | tr -d ' \n') in 1f8b08*) z=-z ;; 28b52ffd) z=--zstd ;; *) z= ;; esac
  awk '/^ / { next } { t = $NF; n = substr($0, 1, length($0) - length(t) - 1)
       if (FILENAME == ARGV[1]) a[n] = t; else if (n in a && a[n] != t) printf "%s\t%s\t%s\n", n, a[n], t; else if (!(n in a)) printf "%s\tmissing\t%s\n", n, t }' \
    "$v.tar.mtime" "$v.$x.mtime" > "$v.$x.mtime-diff"
  ndiff=$(wc -l < "$v.$x.mtime-diff")
  if [ "$ndiff" = 0 ]; then detail+=" mtimes identical;"; return; fi
  # the archive's word on those entries
  cut -f1 "$v.$x.mtime-diff" | tr '\n' '\0' |
    tar $z --full-time --numeric-owner --no-recursion -tv -f "$l" --null -T - 2>/dev/null |
    sed -E 's/^[^ ]+ [^ ]+ +[^ ]+ ([0-9-]+ [0-9:.]+) (.*)$/\1\t\2/' |
    while IFS=$'\t' read -r when name; do printf '%s\t%s\n' "${name%/}" "$(date -d "$when" +%s)"; done > "$v.$x.mtime-archive"
  local tar_ok strata_ok n_checked
  read -r tar_ok strata_ok n_checked < <(awk -F'\t' 'FILENAME == ARGV[1] { h[$1] = $2; next }
      { tt = int($2); st = int($3); if (tt == h[$1]) to++; if (st == h[$1]) so++; n++ }
      END { print to + 0, so + 0, n + 0 }' "$v.$x.mtime-archive" "$v.$x.mtime-diff")
  detail+=" mtimes differ on $ndiff entries (archive's mtime kept by: tar $tar_ok, $x $strata_ok; see $(basename "$v").$x.mtime-diff);"
  [ "$strata_ok" = "$ndiff" ] || ok=no
}

# verify LAYER : compare each strata-like tree of round 1 with tar's
VERIFY=()
verify() {
  local l=$1 n=${NAME[$1]} v=$OUTDIR/verify/${NAME[$1]} c x ok detail want got
  for c in "${CANDS[@]}"; do
    (cd "$W/$n/$c" && find . -printf '%P %y %m %s %U %G %n %l\n' | LC_ALL=C sort) > "$v.$c.meta"
    (cd "$W/$n/$c" && find . -printf '%P %T@\n' | LC_ALL=C sort) > "$v.$c.mtime"
    (cd "$W/$n/$c" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) > "$v.$c.sha256"
    du -sk "$W/$n/$c" | cut -f1 > "$v.$c.du"
  done
  want=$(diffid_of "$l")
  for x in "${CANDS[@]}"; do
    [ "$x" = tar ] && continue
    ok=yes detail=""
    if ! cmp -s "$v.tar.meta" "$v.$x.meta"; then ok=no; detail+=" metadata differs ($(diff "$v.tar.meta" "$v.$x.meta" | grep -c '^[<>]') lines);"; fi
    mtimes "$l" "$v" "$x"
    if ! cmp -s "$v.tar.sha256" "$v.$x.sha256"; then ok=no; detail+=" file contents differ;"; fi
    got=$(awk '/^sha256:/ {print $1}' "$v.$x-out" 2>/dev/null)
    if [ -n "$want" ]; then
      if [ "$want" = "$got" ]; then detail+=" diff ID = images.tsv;"; else ok=no; detail+=" diff ID $got != images.tsv $want;"; fi
    else
      detail+=" diff ID $got (not in images.tsv);"
    fi
    detail+=" $(wc -l < "$v.tar.meta") entries, $(wc -l < "$v.tar.sha256") files; disk KiB tar $(cat "$v.tar.du") $x $(cat "$v.$x.du")"
    VERIFY+=("$n, $x vs tar: identical=$ok;$detail")
    log "verify $n, $x vs tar: identical=$ok;$detail"
  done
}

# ------------------------------------------------------------------ measurement
for r in $(seq 1 "$ROUNDS"); do
  for l in "${LAYERS[@]}"; do
    rm -rf "${W:?}/${NAME[$l]}"; sync   # the previous round's trees of this layer
    k=$(( (r - 1) % ${#CANDS[@]} ))
    for c in "${CANDS[@]:k}" "${CANDS[@]:0:k}"; do run_one "$l" "$c" "$r"; done
    [ "$r" = 1 ] && verify "$l"
  done
done
rm -f "$OUTDIR/time.tmp" "$OUTDIR/out.tmp"

# ------------------------------------------------------------------ table
{
  printf 'strata archive.Apply vs GNU tar -x (gzip -d in its own process); %s rounds, interleaved; fresh ext4 (journal) on loop, direct-io\n' "$ROUNDS"
  awk -F'\t' -v order="$(for l in "${LAYERS[@]}"; do printf '%s ' "${NAME[$l]}"; done)" '
    function median(s,   a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      if (n == 0) return "NA"
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR > 1 && $8 == 0 {
      k = $1 SUBSEP $2; w[k] = w[k] " " $4; c[k] = c[k] " " ($6 + $7)
      if ($5 + 0 > m[k] + 0) m[k] = $5; if (!(k in lo) || $4 + 0 < lo[k]) lo[k] = $4 + 0; if ($4 + 0 > hi[k]) hi[k] = $4 + 0
    }
    NR > 1 && $8 != 0 { bad[$1 SUBSEP $2]++ }
    END {
      printf "%-12s %16s %16s %13s %12s %12s %11s %11s %s\n", "layer", "tar median s", "strata median s", "strata/tar", "strata RSS", "tar RSS", "tar CPU s", "strata CPU", "target (<=0.8x, <64 MiB)"
      printf "%-12s %16s %16s %13s %12s %12s %11s %11s\n", "", "[min-max]", "[min-max]", "", "MiB (max)", "MiB (max)", "median", "median"
      n = split(order, L, " ")
      for (i = 1; i <= n; i++) {
        l = L[i]; t = l SUBSEP "tar"; s = l SUBSEP "strata"
        mt = median(w[t]); ms = median(w[s])
        ratio = (mt + 0 > 0) ? sprintf("%.2f", ms / mt) : "NA"
        verdict = (ratio != "NA" && ratio + 0 <= 0.8 ? "time ok" : "time MISSED") ", " (m[s] / 1024 < 64 ? "memory ok" : "memory MISSED")
        if (bad[t] || bad[s]) verdict = verdict sprintf(" (failed runs: tar %d, strata %d)", bad[t], bad[s])
        printf "%-12s %6.2f [%.2f-%.2f] %6.2f [%.2f-%.2f] %13s %12.1f %12.1f %11.2f %11.2f %s\n", l, mt, lo[t], hi[t], ms, lo[s], hi[s], ratio, m[s] / 1024, m[t] / 1024, median(c[t]), median(c[s]), verdict
      }
    }' "$RES"
  if [ ${#CANDS[@]} -gt 2 ]; then
    echo
    awk -F'\t' -v order="$(for l in "${LAYERS[@]}"; do printf '%s ' "${NAME[$l]}"; done)" -v cands="${CANDS[*]}" '
      function median(s,   a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        if (n == 0) return "NA"
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      NR > 1 && $8 == 0 { k = $1 SUBSEP $2; w[k] = w[k] " " $4; c[k] = c[k] " " ($6 + $7); if ($5 + 0 > m[k] + 0) m[k] = $5 }
      NR > 1 && $8 != 0 { bad[$1 SUBSEP $2]++ }
      END {
        printf "%-12s %-12s %10s %10s %12s %11s %10s %s\n", "layer", "candidate", "median s", "x tar", "x strata", "RSS MiB", "CPU s", "failed runs"
        n = split(order, L, " "); nc = split(cands, C, " ")
        for (i = 1; i <= n; i++) for (j = 1; j <= nc; j++) {
          l = L[i]; k = l SUBSEP C[j]; mt = median(w[l SUBSEP "tar"]); ms = median(w[l SUBSEP "strata"]); mk = median(w[k])
          printf "%-12s %-12s %10.2f %10.2f %12.2f %11.1f %10.2f %d\n", l, C[j], mk, mk / mt, mk / ms, m[k] / 1024, median(c[k]), bad[k]
        }
      }' "$RES"
  fi
  echo
  echo "verification (round 1 trees, each against tar's):"
  for v in "${VERIFY[@]}"; do echo "  $v"; done
} | tee "$OUTDIR/table.txt"
