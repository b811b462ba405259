#!/usr/bin/env bash
# Installs the Debian packages examples/device-c builds with (the C
# compiler, libcurl, libmosquitto, cJSON) when any is missing, so that
# scripts/test.sh can build and test the C device on a fresh machine.
# Idempotent: with everything installed it changes nothing and needs no
# network. Debian/Ubuntu only (apt-get); run as root or with sudo.
set -euo pipefail
pkgs=(gcc make libc6-dev pkg-config libcurl4-openssl-dev libmosquitto-dev libcjson-dev)

missing=()
for p in "${pkgs[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "cdeps: no apt-get here; install the equivalents of: ${missing[*]}" >&2
  exit 1
fi
echo "cdeps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
# Another run (a parallel worktree, a CI job beside a session) may hold
# dpkg's lock: wait for it instead of failing.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
# A fresh image has no package lists; install first and update only if
# the lists are missing or stale.
if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; then
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
fi
