#!/usr/bin/env bash
# Export and import of a ~270 MB, 5-layer image, strata side by side with
# containerd 1.6 (`ctr images export` / `ctr images import`, which unpacks,
# as strata's import does), interleaved, every run cold (caches dropped),
# both roots on one fresh journaled ext4 loop filesystem. Prints a table of
# medians and strata/ctr ratios.
#
#   bench/archive.sh [RUNS]        (default 5; run as root)
#
# Needs the corpus of ../shared/bench/mkimages.sh (/tmp/bench-data/layers),
# its registry (../shared/bench/registry.sh, 127.0.0.1:5000, started when
# down), Debian's containerd (ctr), and bin/strata (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
STRATA=$PWD/bin/strata
SHARED=$(realpath ../shared/bench)
LAYERS=${BENCH_DATA:-/tmp/bench-data}/layers
REG=127.0.0.1:5000
REPO=strata-bench/archive
REF=$REG/$REPO:v1
FS=/tmp/strata-archive-fs
IMG=/tmp/strata-archive-fs.img
export BENCH_CTRD=/tmp/strata-archive-ctrd
CTR="ctr -a $BENCH_CTRD/containerd.sock -n bench"

[ -x "$STRATA" ] || { echo "archive.sh: build bin/strata first (make build)" >&2; exit 1; }
for f in minbase.tar.gz fat-pkgs.tar.gz fat-cleanup.tar.gz smallfiles.tar.gz minbase.tar.zst; do
	[ -f "$LAYERS/$f" ] || { echo "archive.sh: $LAYERS/$f missing: run ../shared/bench/mkimages.sh" >&2; exit 1; }
done

cleanup() {
	set +e
	"$SHARED/containerd.sh" stop >/dev/null 2>&1
	mountpoint -q "$FS" && { grep " $FS/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l; umount "$FS"; }
	rm -f "$IMG"
}
trap cleanup EXIT

"$SHARED/registry.sh" start >/dev/null
mkdir -p "$FS"
truncate -s 16G "$IMG"
mkfs.ext4 -q -F -O has_journal "$IMG"
mount -o loop "$IMG" "$FS"
export BENCH_CTRD_ROOT=$FS/ctrd
"$SHARED/containerd.sh" start >/dev/null
for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done

# The image: five layers of the corpus, pushed once.
push_blob() { # FILE MEDIATYPE -> descriptor JSON
	local d s loc sep
	d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	if ! curl -sf -I "http://$REG/v2/$REPO/blobs/$d" >/dev/null; then
		loc=$(curl -sSf -X POST -D - -o /dev/null "http://$REG/v2/$REPO/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
		case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
		sep='?'; case "$loc" in *\?*) sep='&' ;; esac
		curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc${sep}digest=$d" >/dev/null
	fi
	printf '{"mediaType":"%s","digest":"%s","size":%s}' "$2" "$d" "$s"
}
if ! curl -sf -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/$REPO/manifests/v1" >/dev/null; then
	echo "pushing $REF" >&2
	layers="" diffids=""
	for f in minbase.tar.gz fat-pkgs.tar.gz fat-cleanup.tar.gz smallfiles.tar.gz minbase.tar.zst; do
		mt=application/vnd.oci.image.layer.v1.tar+gzip
		case $f in *.zst) mt=application/vnd.oci.image.layer.v1.tar+zstd ;; esac
		layers="$layers${layers:+,}$(push_blob "$LAYERS/$f" $mt)"
		diffids="$diffids${diffids:+,}\"$(awk -F'\t' -v p="$LAYERS/$f" '$5==p {print $9; exit}' "$LAYERS/../images.tsv")\""
	done
	printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$(go env GOARCH)" "$diffids" > "$FS/config.json"
	config=$(push_blob "$FS/config.json" application/vnd.oci.image.config.v1+json)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' "$config" "$layers" > "$FS/manifest.json"
	curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$FS/manifest.json" "http://$REG/v2/$REPO/manifests/v1" >/dev/null
fi

S() { "$STRATA" --root "$FS/strata" "$@"; }
S pull -q --plain-http "$REF" >/dev/null
$CTR images pull --plain-http "$REF" >/dev/null

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
declare -A T
timed() { # KEY CMD... : appends the seconds CMD took to T[KEY]
	local k=$1 t0 t1
	shift
	cold
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	T[$k]="${T[$k]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
}
for run in $(seq "$RUNS"); do
	order="strata ctr"
	[ $((run % 2)) = 0 ] && order="ctr strata"
	for who in $order; do
		out=$FS/$who.tar
		rm -f "$out"
		if [ $who = strata ]; then
			timed strata-export S images export "$out" "$REF"
			S images rm --sync "$REF" >/dev/null
			timed strata-import S images import "$out"
		else
			timed ctr-export $CTR images export "$out" "$REF"
			$CTR images rm --sync "$REF" >/dev/null
			timed ctr-import $CTR images import "$out"
		fi
	done
	echo "run $run: strata export ${T[strata-export]##* } s, import ${T[strata-import]##* } s; ctr export ${T[ctr-export]##* } s, import ${T[ctr-import]##* } s" >&2
done
size=$(stat -c %s "$FS/strata.tar")
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "image $REF: 5 layers, archive $((size / 1000000)) MB; $RUNS cold runs each, interleaved"
echo "| operation | strata s (median) | ctr 1.6 s (median) | strata / ctr |"
echo "|---|---|---|---|"
for op in export import; do
	s=$(echo "${T[strata-$op]}" | median)
	c=$(echo "${T[ctr-$op]}" | median)
	printf '| %s | %.2f [%s] | %.2f [%s] | %.2f |\n' "$op" "$s" "$(echo ${T[strata-$op]} | tr ' ' ',')" "$c" "$(echo ${T[ctr-$op]} | tr ' ' ',')" "$(awk -v a="$s" -v b="$c" 'BEGIN {print a / b}')"
done
