#!/usr/bin/env bash
# Builds a JavaScript plugin of this repository into a component:
#   scripts/build-js.sh plugins/receipt-js out.wasm
# The folder's `app.js` and what it imports (`switchyard.js` links to
# sdk/js/switchyard.js) are copied, links followed, into a scratch folder:
# componentize-js's ahead-of-time mode only lets the script read files
# below the folder it is in. With `weval` on the PATH (scripts/setup.sh
# --test installs it) the build is ahead of time (`--aot`); without it,
# SpiderMonkey's interpreter runs the plugin. It runs componentize-js
# through sdk/js/componentize.mjs, which makes the generated bindings copy
# strings into the component faster; here it must apply, or the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1
out=$(realpath -m "$2")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -L "$src"/*.js "$scratch"/
aot=()
if command -v weval >/dev/null 2>&1; then
  aot=(--aot --weval-bin "$(command -v weval)")
fi
SWITCHYARD_STRICT_BINDINGS=1 node sdk/js/componentize.mjs "${aot[@]}" --wit wit -n handler -d http -d fetch-event \
  -o "$out" "$scratch/app.js" >/dev/null
