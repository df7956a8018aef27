#!/usr/bin/env bash
# Installs what building and testing Switchyard needs, skipping what is
# already present. Safe to run again and again.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have cargo; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi

# Plugins are WebAssembly components built for wasm32-wasip2.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

# The host's tests prefer cargo-nextest; scripts/test.sh falls back to cargo test.
if ! have cargo-nextest; then
  echo "setup: cargo-nextest not found; tests will run with cargo test"
fi
