#!/usr/bin/env bash
# crictl pull through stratad's CRI against containerd 1.6's CRI plugin (Debian's containerd,
# started here on its own socket, root and state under a temp dir; never the system service).
#
#   bench/cri.sh [-n RUNS] [-i "IMAGES"] [-r REGISTRY]
#
# IMAGES are repo:tag on REGISTRY. Default: the corpus of ../shared/bench/mkimages.sh when it has
# been built (BENCH_DATA/images.tsv, storage under BENCH_REG_ROOT=/tmp/bench-registry), served by
# a registry started here on a free port of 127.0.0.1; otherwise the same kind of registry with
# test images built here (random gzip layers, pushed with skopeo): small (1×1 MiB), multi
# (4×8 MiB), big (1×64 MiB).
# Roots live on one fresh journaled ext4 loop filesystem (BENCH_FS=tmp: on /tmp as it is).
# Every run is cold: each candidate gets a fresh root and a freshly started daemon (not timed),
# page cache dropped; candidates alternate run by run. Prints per image the median seconds of
# each and the ratio stratad/containerd.
# KEEP=1 keeps the work directory (daemons' logs of the last run of each).
# Needs root, containerd (Debian), docker-registry, skopeo, and crictl (scripts/testtools.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=5
IMAGES=""
REG=""
while getopts "n:i:r:" opt; do
  case $opt in
    n) RUNS=$OPTARG ;;
    i) IMAGES=$OPTARG ;;
    r) REG=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [-i IMAGES] [-r REGISTRY]" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d /tmp/strata-cri-bench.XXXXXX)
PIDS=()
IMG=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  { grep -F " $WORK/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount "$m" || true; done
  if [ -n "$IMG" ]; then
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK (on $IMG, still mounted)" >&2; return; fi
    umount "$WORK" || true
    rm -f "$IMG"
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# Every root on one fresh journaled ext4 on a loop device, as compare.sh does: this machine's root
# filesystem has no journal, which makes mass file creation slow and noisy (BENCH_FS=tmp: skip).
if [ "${BENCH_FS:-loop}" = loop ]; then
  IMG=$WORK.img
  truncate -s 64G "$IMG"
  mkfs.ext4 -q -F "$IMG"
  mount -o loop "$IMG" "$WORK"
fi

"$REPO/scripts/testtools.sh" crictl
CRICTL=${STRATA_TEST_TOOLS:-/var/cache/strata-test}/crictl-v1.37.0/crictl
(cd "$REPO" && go build -trimpath -o "$WORK/bin/stratad" ./cmd/stratad)

BENCH_DATA=${BENCH_DATA:-/tmp/bench-data}
CORPUS=${BENCH_REG_ROOT:-/tmp/bench-registry}/storage
# serve_registry STORAGE: a private registry over STORAGE on a free port of 127.0.0.1 (reading a
# storage another registry serves is safe); sets REG.
serve_registry() {
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REG=127.0.0.1:$port
  mkdir -p "$WORK/registry"
  cat > "$WORK/registry/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $1}, cache: {blobdescriptor: inmemory}, redirect: {disable: true}}
http: {addr: $REG}
YML
  docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "registry on $REG did not come up" >&2; exit 1
}
if [ -z "$REG" ] && [ -f "$BENCH_DATA/images.tsv" ] && [ -d "$CORPUS/docker/registry/v2/repositories" ]; then
  serve_registry "$CORPUS"
  IMAGES=${IMAGES:-"debian:minbase debian:fat debian:fat-zstd synthetic:smallfiles synthetic:bigfile"}
fi
if [ -z "$REG" ]; then
  serve_registry "$WORK/registry-data"
  # image NAME LAYERS MIB: an OCI image of LAYERS gzip layers of MIB MiB of random bytes each.
  image() {
    local name=$1 n=$2 mib=$3 d="$WORK/oci/$1" layers="" diffids="" i
    mkdir -p "$d/blobs/sha256" "$d/src"
    for i in $(seq "$n"); do
      mkdir -p "$d/src/$i/data"
      head -c "$((mib << 20))" /dev/urandom > "$d/src/$i/data/layer-$i"
      tar -C "$d/src/$i" --numeric-owner -cf "$d/l.tar" data
      local diff; diff=$(sha256sum < "$d/l.tar" | cut -d' ' -f1)
      gzip -n -6 < "$d/l.tar" > "$d/l.tgz"
      local dg; dg=$(sha256sum < "$d/l.tgz" | cut -d' ' -f1)
      mv "$d/l.tgz" "$d/blobs/sha256/$dg"
      layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$(stat -c %s "$d/blobs/sha256/$dg")}"
      diffids+="${diffids:+,}\"sha256:$diff\""
    done
    rm -rf "$d/src" "$d/l.tar"
    printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffids" > "$d/c"
    local cd; cd=$(sha256sum < "$d/c" | cut -d' ' -f1); local cs; cs=$(stat -c %s "$d/c"); mv "$d/c" "$d/blobs/sha256/$cd"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd" "$cs" "$layers" > "$d/m"
    local md; md=$(sha256sum < "$d/m" | cut -d' ' -f1); local ms; ms=$(stat -c %s "$d/m"); mv "$d/m" "$d/blobs/sha256/$md"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' "$md" "$ms" > "$d/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"
    skopeo copy -q --dest-tls-verify=false "oci:$d:v1" "docker://$REG/bench/$name:v1"
  }
  image small 1 1
  image multi 4 8
  image big 1 64
  IMAGES=${IMAGES:-"bench/small:v1 bench/multi:v1 bench/big:v1"}
fi

# Both daemons reach the registry in plain HTTP through a hosts.toml.
mkdir -p "$WORK/hosts/$REG"
printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REG" "$REG" > "$WORK/hosts/$REG/hosts.toml"

# start_daemon NAME: a fresh root and daemon; prints its pid.
start_daemon() {
  local name=$1 base="$WORK/$1"
  { grep -F " $base/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount "$m" || true; done
  rm -rf "$base"; mkdir -p "$base"
  case $name in
  stratad)
    cat > "$base/config.toml" <<TOML
root = "$base/root"
state = "$base/state"
[registry]
config_path = "$WORK/hosts"
TOML
    "$WORK/bin/stratad" --config "$base/config.toml" >"$base/log" 2>&1 &
    ;;
  containerd)
    cat > "$base/config.toml" <<TOML
version = 2
root = "$base/root"
state = "$base/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$base/state/containerd.sock"
[ttrpc]
  address = "$base/state/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$base/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$WORK/hosts"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$base/cni/bin"
      conf_dir = "$base/cni/conf"
TOML
    containerd --config "$base/config.toml" >"$base/log" 2>&1 &
    ;;
  esac
  echo $!
}
sock() { case $1 in stratad) echo "$WORK/stratad/state/strata.sock" ;; containerd) echo "$WORK/containerd/state/containerd.sock" ;; esac; }

declare -A TIMES
for img in $IMAGES; do
  for run in $(seq "$RUNS"); do
    order="stratad containerd"
    [ $((run % 2)) = 0 ] && order="containerd stratad"
    for cand in $order; do
      pid=$(start_daemon "$cand")
      PIDS+=("$pid")
      ep="unix://$(sock "$cand")"
      up=0
      for _ in $(seq 300); do "$CRICTL" --config /dev/null -r "$ep" -i "$ep" --timeout 2s images >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
      [ $up = 1 ] || { echo "$cand did not come up; its log:" >&2; tail -20 "$WORK/$cand/log" >&2; exit 1; }
      sync; echo 3 > /proc/sys/vm/drop_caches
      t0=$(date +%s.%N)
      "$CRICTL" --config /dev/null -r "$ep" -i "$ep" --timeout 600s pull "$REG/$img" >/dev/null
      t1=$(date +%s.%N)
      TIMES[$img,$cand]+="$(echo "$t1 - $t0" | bc) "
      kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
printf '%-28s %12s %12s %8s\n' image stratad_s containerd_s ratio
for img in $IMAGES; do
  s=$(echo "${TIMES[$img,stratad]}" | median); c=$(echo "${TIMES[$img,containerd]}" | median)
  printf '%-28s %12.3f %12.3f %8.2f\n' "$img" "$s" "$c" "$(echo "$s / $c" | bc -l)"
done
echo "($RUNS cold runs each, medians; registry $REG)"
