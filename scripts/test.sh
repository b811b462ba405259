#!/usr/bin/env bash
# Runs every check and every test, the same way locally and in CI:
#   pinned tools → API lint + generated-code check → build → vet → staticcheck
#   → the Vault server binary (built once per machine, then cached)
#   → the Debian packages of the C device example (apt-get, when missing)
#   → all tests with the race detector (fuzz seed corpora included)
#   → every fuzz target beyond its seed corpus, FUZZTIME (10s) each
#     (scripts/fuzz.sh; longer runs: docs/RELIABILITY.md)
#   → every benchmark once (smoke).
# Tests that need Vault start their own `vault server -dev` on a 127.0.0.1
# ephemeral port from the binary named by SIGNERD_VAULT_BIN; the HA tests
# (cmd/signerd, TestE2EVaultHA…) start a 3-node Raft cluster over TLS from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "tools"
PATH="$(bash scripts/tools.sh):$PATH"
export PATH

step "generated code"
bash scripts/gen.sh --check

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.' ) 2>&1 || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "build"
go build ./...

step "vet"
go vet ./...

step "staticcheck"
staticcheck ./...

step "vault server binary"
SIGNERD_VAULT_BIN=$(bash scripts/vault-build.sh)
export SIGNERD_VAULT_BIN
"$SIGNERD_VAULT_BIN" version

# examples/device-c is built and run by cmd/signerd's TestE2EDeviceC with
# the system C compiler and Debian's libcurl, libmosquitto and cJSON.
step "C device packages"
bash scripts/cdeps.sh

step "tests"
go test -race -count=1 -timeout 20m ./... "$@"

# The seed corpora ran with the tests; this searches beyond them, briefly.
step "fuzz"
bash scripts/fuzz.sh

# Benchmarks run once each as a smoke test: they must work, not meet numbers
# (the figures live in docs/BENCHMARKS.md, made by scripts/bench.sh).
step "benchmark smoke"
go test -count=1 -run='^$' -bench=. -benchtime=1x -timeout 10m ./...

step "done"
