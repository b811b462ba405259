#!/usr/bin/env bash
# Lints the API and regenerates the committed Go, gRPC, gateway and OpenAPI
# code with the pinned local plugins. With --check, generates into a scratch
# directory and fails if the committed code differs (stale or hand-edited).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PATH="$(bash scripts/tools.sh):$PATH"
buf lint
buf format --diff --exit-code
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  buf generate -o "$out"
  if ! diff -r --exclude='*.proto' --exclude='openapi.go' "$out/proto" proto; then
    echo "gen: generated code is stale: run scripts/gen.sh and commit the result" >&2
    exit 1
  fi
  echo "gen: generated code is current"
else
  buf generate
fi
