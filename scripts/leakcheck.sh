#!/usr/bin/env bash
# What the test suite may leave on the host, before and after it:
#   scripts/leakcheck.sh snapshot FILE   record the host's state in FILE
#   scripts/leakcheck.sh check FILE      fail, naming each, on what is new
# Mounts, network interfaces, network namespaces, iptables rules and chains,
# processes of the runtime (shims, runc, strata, registries, BuildKit) and
# the tests' temporary directories. Only what appeared in between counts,
# so whatever else runs on the host (another runtime, an earlier leak) is
# not blamed on this run.
set -euo pipefail

state() {
	# Mount points (the fifth field of mountinfo; octal escapes kept).
	awk '{print "mount " $5}' /proc/self/mountinfo
	ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print "link " $2}'
	for d in /run/netns /var/run/netns; do
		[ -d "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -printf "netns %p\n"
	done
	for t in filter nat mangle; do
		iptables-save -t "$t" 2>/dev/null | grep -E '^(-A|:)' | sed -E "s/^(:[^ ]+ [^ ]+).*/\1/; s/^/iptables $t /"
	done
	# Runtime processes by command name, with their start time so a PID
	# reused by something else is not taken for the same process.
	ps -eo pid=,lstart=,comm= | awk '$NF ~ /^(containerd-shim|runc|strata|stratad|registry|docker-registry|buildkitd|buildctl|crictl|critest)/ {pid=$1; c=$NF; $1=""; $NF=""; print "process " c " " pid " " $0}'
	find /tmp -mindepth 1 -maxdepth 1 \( -name 'Test*' -o -name 'strata-*' -o -name 'Fuzz*' -o -name 'store[0-9]*' \) -printf "tmp %p\n"
}

case "${1:-}" in
snapshot)
	mkdir -p "$(dirname "$2")"
	state | sort -u > "$2"
	;;
check)
	now=$(mktemp)
	trap 'rm -f "$now"' EXIT
	state | sort -u > "$now"
	new=$(comm -13 "$2" "$now")
	if [ -n "$new" ]; then
		echo "leakcheck: the tests left these behind:" >&2
		echo "$new" | sed 's/^/  /' >&2
		exit 1
	fi
	echo "leakcheck: nothing left behind (mounts, links, netns, iptables, processes, temp dirs)"
	;;
*)
	echo "usage: $0 snapshot|check FILE" >&2
	exit 2
	;;
esac
