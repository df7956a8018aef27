#!/usr/bin/env bash
# Builds the reference plugins (plugins/) and the test guests (tests/guests/)
# as wasm32-wasip2 components, in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
for ws in plugins tests/guests; do
  cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$ws/Cargo.toml"
done
