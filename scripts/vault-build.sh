#!/usr/bin/env bash
# Builds the Vault server binary used by the tests from the Go module proxy
# (there is no Docker engine and no binary download site here) and caches it
# outside the repo, keyed by Vault version and the tools module's go.sum, so a
# warm run costs nothing. Prints the binary's path on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools/vault"
version=$(awk '/^require github.com\/hashicorp\/vault /{print $3}' "$tools/go.mod")
key=$(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-12)
cache=${SIGNERD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signerd}
bin="$cache/vault-$version-$key/vault"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$(dirname "$bin")"
# Several test runs on one machine (parallel worktrees, a CI clone beside a
# session) would otherwise each spend 20 minutes building the same binary and
# race on one temp file: one builds under a lock, the others wait for it.
exec 9>"$(dirname "$bin")/.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
echo "vault-build: building Vault $version (cold build: ~20 min on 2 cores)..." >&2
start=$(date +%s)
(
  cd "$tools"
  # -trimpath and stripped symbols: the unstripped binary is ~500 MB.
  go build -mod=readonly -trimpath -ldflags='-s -w' -o "$bin.tmp.$$" github.com/hashicorp/vault
)
mv "$bin.tmp.$$" "$bin"
echo "vault-build: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
