#!/usr/bin/env bash
# The house style: rustfmt on every Rust workspace of the repository (the
# host, the plugins, the test guests, the fuzz targets), then clippy on the
# host's workspace with warnings as errors, every target.
#   scripts/lint.sh          both (clippy: about 12 minutes from scratch)
#   scripts/lint.sh --fmt    rustfmt only (seconds; scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
for manifest in Cargo.toml plugins/Cargo.toml tests/guests/Cargo.toml fuzz/Cargo.toml; do
  if ! cargo fmt --manifest-path "$manifest" --all --check >/dev/null; then
    echo "lint: $manifest is not formatted; run: cargo fmt --manifest-path $manifest --all" >&2
    exit 1
  fi
done
if [ "${1:-}" != "--fmt" ]; then
  cargo clippy --quiet --all-targets -- -D warnings
fi
