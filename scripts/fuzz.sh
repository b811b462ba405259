#!/usr/bin/env bash
# Runs every fuzz target in the repo (each `func Fuzz…` in a _test.go file,
# found anew on every run, so a new target is fuzzed without editing this
# script) beyond its seed corpus, one target after another, for FUZZTIME
# each: 10s by default, which is what scripts/test.sh (CI) spends. For a
# longer hunt:
#   FUZZTIME=10m bash scripts/fuzz.sh            # every target
#   FUZZTIME=1h bash scripts/fuzz.sh 'Sign|Parse' # targets matching a regexp
# A target that fails leaves its input in the package's
# testdata/fuzz/<Target>/ and this script stops with the failure: fix the
# bug and commit that file, which makes it a seed corpus entry that every
# `go test` runs from then on. The corpus Go generates while fuzzing stays
# in the build cache (go env GOCACHE), so repeated runs on one machine
# build on each other.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-10s}
filter=${1:-.}

targets=$(git grep -h -o -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' | wc -l)
if [ "$targets" -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

ran=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while IFS=: read -r file _ decl; do
  target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$decl")
  grep -qE "$filter" <<<"$target" || continue
  pkg=./$(dirname "$file")
  start=$SECONDS
  # -run='^$': the package's tests ran already; only the target's seed
  # corpus and then the fuzzer run here.
  fuzzed() { go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$out" 2>&1; }
  # Go's fuzzing engine sometimes ends a run whose time is up with a bare
  # "context deadline exceeded" while stopping its workers (golang/go#48127),
  # reporting no input and writing none to testdata: that is the tool, not a
  # finding. Such a run is repeated once; a real finding names its input.
  if ! fuzzed && ! { grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out" &&
    echo "fuzz: $pkg $target: the fuzzing engine stopped on its own deadline; running it again" >&2 && fuzzed; }; then
    cat "$out"
    echo "fuzz: $pkg $target FAILED; the failing input is in $pkg/testdata/fuzz/$target/ (commit it with the fix)" >&2
    exit 1
  fi
  execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -n 1 || true)
  if [ -z "$execs" ]; then
    # go test passes when -fuzz matches nothing: that must not pass here.
    cat "$out"
    echo "fuzz: $pkg $target did not fuzz" >&2
    exit 1
  fi
  printf 'fuzz: %-28s %-22s ok  %3ss  %s\n' "$pkg" "$target" "$((SECONDS - start))" "$execs"
  ran=$((ran + 1))
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go')

if [ "$ran" -eq 0 ]; then
  echo "fuzz: no target matches $filter" >&2
  exit 1
fi
echo "fuzz: $ran target(s), $fuzztime each"
