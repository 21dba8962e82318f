#!/usr/bin/env bash
# Installs what the test suite needs and a fresh Debian 12 machine lacks;
# does nothing when everything is there. `make test` runs it first, so the
# README's test command works on its own (as root).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have git || need+=(git)
have igzip || need+=(isal)                      # fast gzip inflate for layer apply
have tar || need+=(tar)
have docker-registry || need+=(docker-registry) # the real registry tests run
have skopeo || need+=(skopeo)                   # an independent reader/writer of image archives
have ctr || need+=(containerd)                  # its ctr client drives stratad; its daemon stays stopped
have containerd-shim-runc-v2 || need+=(containerd) # the runtime v2 shim tasks run under (with runc)
have runc || need+=(runc)
# Tests build their busybox image from the static binary (nothing downloaded).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
have curl || need+=(curl)                       # make demo pushes its image with curl
have python3 || need+=(python3)                 # make demo picks a free port
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: the tests need ${need[*]}: run as root (apt-get) or install them first" >&2
  exit 1
fi
# Package scripts must not start services (docker-registry would listen on
# :5000 on every interface, containerd would start its daemon): tests start
# their own on 127.0.0.1 and on temporary sockets.
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${need[*]}" >&2
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
