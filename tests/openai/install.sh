#!/usr/bin/env bash
# install.sh DEST - installs the openai npm client of tests/openai (package.json, the committed
# package-lock.json: `npm ci`, so exactly the locked versions) into DEST/node_modules, with
# test.mjs beside it. Nothing is written into the source tree. Skipped when DEST already holds
# this lockfile's install. Exit status: 0 ok, 1 npm missing or the install failed (message).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
dest=$1
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 1; }
mkdir -p "$dest"
cp "$src/test.mjs" "$dest/"
if [ -d "$dest/node_modules/openai" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
    exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
if ! timeout 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >npm.log 2>&1; then
    echo "install.sh: npm ci failed: $(tail -5 npm.log)" >&2
    rm -f "$dest/package-lock.json" # not a finished install
    exit 1
fi
