#!/usr/bin/env bash
# Installs the pinned code-generation and lint tools with `go install` into a
# cache directory outside the repo (keyed by this file's contents) and prints
# that bin directory. Nothing is downloaded but Go modules.
set -euo pipefail
tools=(
  github.com/bufbuild/buf/cmd/buf@v1.75.0
  google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.33.0
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@v2.33.0
  honnef.co/go/tools/cmd/staticcheck@v0.8.2
)
key=$( (printf '%s\n' "${tools[@]}"; go version) | sha256sum | cut -c1-12)
cache=${SIGNERD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signerd}
bin="$cache/tools-$key/bin"
mkdir -p "$bin"
# Concurrent runs (parallel worktrees, a CI clone beside a session) install
# once under a lock instead of racing go install into the same directory.
exec 9>"$bin/.lock"
flock 9
if [ ! -f "$bin/.complete" ]; then
  for t in "${tools[@]}"; do
    echo "tools: go install $t" >&2
    GOBIN="$bin" GOFLAGS=-mod=mod go install "$t"
  done
  touch "$bin/.complete"
fi
echo "$bin"
