#!/usr/bin/env bash
# Builds the reference plugins (plugins/) and the test guests (tests/guests/)
# as wasm32-wasip2 components, in release mode; and the Python and
# JavaScript reference plugins when their toolchains are installed
# (`setup.sh --test` installs them), unless they are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
for ws in plugins tests/guests; do
  cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$ws/Cargo.toml"
done

out=plugins/target/wasm32-wasip2/release
# stale OUT SOURCE...: OUT is missing or older than a file under a SOURCE.
stale() {
  local out=$1; shift
  [ ! -f "$out" ] || [ -n "$(find -L "$@" -newer "$out" -type f -not -path '*/__pycache__/*' | head -1)" ]
}
if command -v componentize-py >/dev/null 2>&1; then
  if stale $out/receipt-py.wasm plugins/receipt-py sdk/python wit; then
    echo "build-plugins: receipt-py (componentize-py)"
    componentize-py -d wit -w handler componentize -p plugins/receipt-py -p sdk/python app \
      -o $out/receipt-py.wasm >/dev/null
  fi
else
  echo "build-plugins: componentize-py not found; skipping the Python plugin (setup.sh --test installs it)"
fi
if command -v componentize-js >/dev/null 2>&1; then
  if stale $out/receipt-js.wasm plugins/receipt-js sdk/js wit scripts/build-js.sh; then
    echo "build-plugins: receipt-js (componentize-js$(command -v weval >/dev/null && echo ', ahead of time'))"
    scripts/build-js.sh plugins/receipt-js $out/receipt-js.wasm
  fi
else
  echo "build-plugins: componentize-js not found; skipping the JavaScript plugin (setup.sh --test installs it)"
fi
