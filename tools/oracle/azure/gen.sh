#!/usr/bin/env bash
# Regenerates signing/azure/testdata/vectors.json with Microsoft's Azure IoT
# SDK for Node.js at the exact versions of package-lock.json. CI does not run
# this: it reads the committed vectors. See README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${SIGNERD_ORACLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/signerd/oracle-azure}"
mkdir -p "$cache"
# npm ci installs exactly the lock file (with its integrity hashes) and
# refuses a package.json that disagrees with it; install scripts are not
# needed by the SDK's pure JavaScript and are not run.
cp "$here/package.json" "$here/package-lock.json" "$cache/"
(cd "$cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
NODE_PATH="$cache/node_modules" node "$here/gen.js" "$repo/signing/azure/testdata/vectors.json"
