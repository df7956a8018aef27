#!/usr/bin/env bash
# The main job: set up, build the host and the plugins, and run the router on
# an embedded Kafka broker with the booking example's plugins. It prints
# `bootstrap: 127.0.0.1:<port>`; produce to it with kcat (see README.md).
# Pass another config with: scripts/run.sh --config examples/travel/router.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --quiet --bin switchyard
exec target/debug/switchyard dev "$@"
