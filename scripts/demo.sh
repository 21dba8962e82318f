#!/usr/bin/env bash
# make demo: strata's main job without internet. Starts a throwaway local
# registry (Debian's docker-registry) on 127.0.0.1, builds a small two-layer
# image from files of this machine and pushes it there with curl, then runs
# strata pull, images ls, images mount, du against it, and cleans up
# everything it made (registry process by PID, mounts, temp dirs).
#
#   scripts/demo.sh [STRATA_BINARY]     (default: bin/strata)
set -euo pipefail

STRATA=$(realpath "${1:-bin/strata}")
command -v docker-registry >/dev/null || { echo "demo: needs docker-registry (apt-get install -y docker-registry)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (overlayfs mounts)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/strata-demo.XXXXXX)
REG_PID=""
MNT=$WORK/mnt
cleanup() {
	set +e
	if mountpoint -q "$MNT" 2>/dev/null; then "$STRATA" --root "$WORK/root" images unmount --rm "$MNT" >/dev/null 2>&1 || umount "$MNT"; fi
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	grep -q " $WORK/" /proc/self/mountinfo && awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
	rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 5055)
REG=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
echo "== registry on $REG (pid $REG_PID)"

# Layer 1: a tiny root filesystem; layer 2 changes it (adds a file, deletes one).
mkdir -p "$WORK/l1/etc" "$WORK/l1/bin" "$WORK/l2/etc"
cp /bin/busybox "$WORK/l1/bin/" 2>/dev/null || cp /bin/ls "$WORK/l1/bin/"
echo "strata-demo" > "$WORK/l1/etc/hostname"
echo "removed by layer 2" > "$WORK/l1/etc/old.conf"
echo "hello from layer 2" > "$WORK/l2/etc/motd"
touch "$WORK/l2/etc/.wh.old.conf"
blob() { # FILE MEDIATYPE -> pushes, prints a descriptor
	local d s
	d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	loc=$(curl -sSf -X POST -D - -o /dev/null "http://$REG/v2/demo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
	case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
	sep='?'; case "$loc" in *\?*) sep='&' ;; esac
	curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc${sep}digest=$d" >/dev/null
	printf '{"mediaType":"%s","digest":"%s","size":%s}' "$2" "$d" "$s"
}
diffids=""
layers=""
for l in l1 l2; do
	tar --numeric-owner --owner=0 --group=0 -C "$WORK/$l" -cf "$WORK/$l.tar" .
	diffids="$diffids${diffids:+,}\"sha256:$(sha256sum "$WORK/$l.tar" | cut -d' ' -f1)\""
	gzip -n -c "$WORK/$l.tar" > "$WORK/$l.tar.gz"
	layers="$layers${layers:+,}$(blob "$WORK/$l.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)"
done
ARCH=$(go env GOARCH 2>/dev/null || dpkg --print-architecture)
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created_by":"demo layer 1"},{"created_by":"demo layer 2"}]}' \
	"$ARCH" "$diffids" > "$WORK/config.json"
config=$(blob "$WORK/config.json" application/vnd.oci.image.config.v1+json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' "$config" "$layers" > "$WORK/manifest.json"
curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$WORK/manifest.json" "http://$REG/v2/demo/manifests/latest" >/dev/null
echo "== pushed $REG/demo:latest"

S() { echo "\$ strata $*"; "$STRATA" --root "$WORK/root" "$@"; }
S pull --progress plain "$REG/demo:latest"
S images ls
mkdir -p "$MNT"
S images mount "$REG/demo:latest" "$MNT"
echo "\$ ls -l $MNT/etc && cat $MNT/etc/motd"
ls -l "$MNT/etc"
cat "$MNT/etc/motd"
[ ! -e "$MNT/etc/old.conf" ] || { echo "demo: the whiteout did not hide etc/old.conf" >&2; exit 1; }
S images unmount --rm "$MNT"
S du
echo "== demo done; cleaning up"
