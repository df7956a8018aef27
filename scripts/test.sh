#!/usr/bin/env bash
# Every test: the formatting (scripts/lint.sh --fmt), the guest SDK's and
# plugins' native unit tests, the host's unit and end-to-end tests, and every
# example's fixtures through `switchyard test`. Clippy runs in
# scripts/lint.sh, not here: checking every dependency again takes about 12
# minutes on a fresh 2-core machine, which the test command's budget has no
# room for.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh --test

echo "== style: rustfmt"
scripts/lint.sh --fmt

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
