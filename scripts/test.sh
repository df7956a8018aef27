#!/usr/bin/env bash
# Every test: the guest SDK's and plugins' native unit tests, the host's unit
# and end-to-end tests, and every example's fixtures through `switchyard test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh --test

echo "== plugins: native unit tests"
cargo test --quiet --manifest-path plugins/Cargo.toml

echo "== host: unit, doc and end-to-end tests"
cargo build --quiet --bin switchyard --tests
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast --tests
fi
cargo test --quiet --doc

echo "== harness: every example and the fault fixtures"
target/debug/switchyard test tests/faults examples/*/
