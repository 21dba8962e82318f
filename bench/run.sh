#!/usr/bin/env bash
# `strata run` side by side with `podman run` (Debian's podman 4.3, runc, CNI), issue 15:
#
#   bench/run.sh [-n RUNS]      (default 20; as root)
#
# Candidates, on the same busybox image (testutil.BusyboxLayout, written by bench/mkbusybox and
# loaded with `podman load` and `strata images import`), warm (image present, one untimed run
# each first):
#   podman    podman --root/--runroot/--tmpdir on the loop fs (overlay, cgroupfs, file events)
#   strata    strata --root R: embedded mode, no daemon (shims outlive the CLI, as podman's conmon)
#   stratad   strata --address SOCK: through a stratad started once on its own root and state
# Scenarios, each with the candidates' default networking (podman's default CNI network
# `podman` on cni-podman0; strata's default bridge network, here on a bridge of its own,
# strb-bench0 10.84.250.0/24, so as not to touch the host's strata0) and with --network none:
#   rm        `run --rm IMAGE true`: wall time of the command
#   stop      `run -d IMAGE sh -c 'trap "exit 0" TERM; sleep 60 & wait'` then `stop` (podman
#             `stop -t 10`, strata `stop`, also 10 s): wall time of both commands; `rm` untimed.
#             Not `sleep 60`: as pid 1 it ignores SIGTERM, so both would wait the full 10 s and
#             the figure would be the timeout.
# Runs interleave and rotate (podman strata stratad, strata stratad podman, …). Prints per
# scenario the median milliseconds of each and the ratios to podman, and the load average.
# Roots on one fresh journaled ext4 loop filesystem (sparse /tmp image, direct I/O, as
# ../shared/bench/compare.sh). At the end: podman rm -af, our containers removed, stratad
# restarted once (its start tears down what no container holds) and stopped, the bridges gone,
# the loop fs unmounted and deleted. KEEP=1 keeps the work directory and logs.
# Podman gets --ulimit nofile=1024:1024 --ulimit nproc=4096:4096: its defaults (1048576 and the
# host's) exceed what runc may set here (no CAP_SYS_RESOURCE in this machine's container).
#
# Measured here (2 cores shared with six other engineers' builds and tests; see bench/README.md
# for the table and the analysis).
set -euo pipefail

RUNS=20
while getopts "n:" opt; do
  case $opt in
    n) RUNS=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/run.sh runs containers: run it as root" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
if ! command -v podman >/dev/null; then
  # Debian's package; no service is started (the machine has no systemd as pid 1).
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman >/dev/null
fi

WORK=$(mktemp -d /tmp/strata-run-bench.XXXXXX)
FSIMG=$WORK.img
LOOP=""
DPID=""
BR=strb-bench0
SUBNET=10.84.250.0/24 # outside network.DefaultPool (10.86.0.0/16), where user networks of other roots go
PODMAN_BR_EXISTED=0
ip link show cni-podman0 >/dev/null 2>&1 && PODMAN_BR_EXISTED=1
PODMAN_IPAM_EXISTED=0 # podman's host-local leases of its default network
[ -e /var/lib/cni/networks/podman ] && PODMAN_IPAM_EXISTED=1

cleanup() {
  set +e
  if [ -n "${P:-}" ]; then $P rm -af >/dev/null 2>&1; fi
  if [ -n "${SE:-}" ]; then for id in $($SE ps -aq 2>/dev/null); do $SE rm -f "$id" >/dev/null 2>&1; done; fi
  if [ -n "$DPID" ]; then
    for id in $($SD ps -aq 2>/dev/null); do $SD rm -f "$id" >/dev/null 2>&1; done
    stop_daemon
    # A start of stratad cleans up what no container holds: endpoints, the bridge and chains.
    start_daemon && stop_daemon
  fi
  ip link show "$BR" >/dev/null 2>&1 && { echo "bridge $BR left: deleting it" >&2; ip link del "$BR"; }
  if [ "$PODMAN_BR_EXISTED" = 0 ] && ip link show cni-podman0 >/dev/null 2>&1; then ip link del cni-podman0; fi
  if [ "$PODMAN_IPAM_EXISTED" = 0 ]; then rm -rf /var/lib/cni/networks/podman; fi
  { grep -F " $WORK/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK (mounted from $LOOP)" >&2; return; fi
  if mountpoint -q "$WORK"; then umount "$WORK"; fi
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  rm -f "$FSIMG"
  rm -rf "$WORK"
}
trap cleanup EXIT

# One fresh journaled ext4 for every root (this machine's / has no journal).
truncate -s 16G "$FSIMG"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$FSIMG"
LOOP=$(losetup -f --show --direct-io=on "$FSIMG")
mount "$LOOP" "$WORK"
mkdir -p "$WORK/bin" "$WORK/podman" "$WORK/strata" "$WORK/stratad"

(cd "$REPO" && go build -trimpath -o "$WORK/bin/strata" ./cmd/strata && go build -trimpath -o "$WORK/bin/stratad" ./cmd/stratad \
  && go run ./bench/mkbusybox "$WORK/busybox.tar")
IMG=docker.io/library/busybox:strata-test
export STRATA_DEFAULT_BRIDGE=$BR=$SUBNET STRATA_NAMESPACE=bench
P="podman --root $WORK/podman/root --runroot $WORK/podman/run --tmpdir $WORK/podman/tmp --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
PRUN="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
SE="$WORK/bin/strata --root $WORK/strata/root"
SOCK=$WORK/stratad/s.sock
SD="$WORK/bin/strata --address $SOCK"
printf '[network]\ndefault_bridge = "%s"\ndefault_subnet = "%s"\n[cri]\ndisabled = true\n' "$BR" "$SUBNET" > "$WORK/stratad/config.toml"

start_daemon() {
  "$WORK/bin/stratad" --config "$WORK/stratad/config.toml" --root "$WORK/stratad/root" --state "$WORK/stratad/state" \
    --address "$SOCK" >>"$WORK/stratad/log" 2>&1 &
  DPID=$!
  for _ in $(seq 300); do $SD namespaces ls >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "stratad did not come up: $(tail -5 "$WORK/stratad/log")" >&2
  return 1
}
stop_daemon() {
  kill "$DPID" 2>/dev/null
  while kill -0 "$DPID" 2>/dev/null; do sleep 0.1; done
}
start_daemon

$P load -q -i "$WORK/busybox.tar" >/dev/null
$SE images import "$WORK/busybox.tar" >/dev/null
$SD images import "$WORK/busybox.tar" >/dev/null

# cli, runflags, stopflags CANDIDATE: the command and flags of a candidate.
cli() { case $1 in podman) echo "$P" ;; strata) echo "$SE" ;; stratad) echo "$SD" ;; esac; }
runflags() { case $1 in podman) echo "$PRUN" ;; *) echo "" ;; esac; }
stopflags() { case $1 in podman) echo "-t 10" ;; *) echo "" ;; esac; }
now_ns() { local t=${EPOCHREALTIME/./}; echo "${t}000"; }

# one SCENARIO CANDIDATE NETFLAGS: one timed run; prints milliseconds.
one() {
  local c; c=$(cli "$2")
  local t0 t1 id
  case $1 in
    rm)
      t0=$(now_ns)
      $c run --rm $(runflags "$2") $3 "$IMG" true >/dev/null
      t1=$(now_ns)
      ;;
    stop)
      t0=$(now_ns)
      id=$($c run -d $(runflags "$2") $3 "$IMG" sh -c 'trap "exit 0" TERM; sleep 60 & wait')
      $c stop $(stopflags "$2") "$id" >/dev/null
      t1=$(now_ns)
      $c rm "$id" >/dev/null
      ;;
  esac
  echo $(( (t1 - t0) / 1000000 ))
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

CANDS=(podman strata stratad)
RESULTS=$WORK/results.tsv
: > "$RESULTS"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for scen in rm stop; do
  for net in default none; do
    nf=""; [ "$net" = none ] && nf="--network none"
    for c in "${CANDS[@]}"; do one "$scen" "$c" "$nf" >/dev/null; done # warm-up, untimed
    for i in $(seq 0 $((RUNS - 1))); do
      for k in 0 1 2; do
        c=${CANDS[$(( (i + k) % 3 ))]}
        printf '%s\t%s\t%s\t%s\n' "$scen" "$net" "$c" "$(one "$scen" "$c" "$nf")" >> "$RESULTS"
      done
    done
  done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

echo "bench/run.sh: $RUNS runs each, interleaved; medians in ms; ratio = candidate / podman"
echo "load average: before $LOAD0, after $LOAD1 ($(nproc) CPUs)"
printf '%-5s %-8s %8s %8s %8s %10s %10s\n' scen network podman strata stratad strata/pm stratad/pm
for scen in rm stop; do
  for net in default none; do
    declare -A med=()
    for c in "${CANDS[@]}"; do
      med[$c]=$(awk -F'\t' -v s="$scen" -v n="$net" -v c="$c" '$1==s && $2==n && $3==c {print $4}' "$RESULTS" | median)
    done
    printf '%-5s %-8s %8s %8s %8s %10s %10s\n' "$scen" "$net" "${med[podman]}" "${med[strata]}" "${med[stratad]}" \
      "$(awk -v a="${med[strata]}" -v b="${med[podman]}" 'BEGIN{printf "%.2f", a/b}')" \
      "$(awk -v a="${med[stratad]}" -v b="${med[podman]}" 'BEGIN{printf "%.2f", a/b}')"
  done
done
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT"; fi
