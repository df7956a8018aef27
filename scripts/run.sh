#!/usr/bin/env bash
# The main job: set up, build the host and the plugins, and run every example
# folder's plugins on its fixture events with `switchyard test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build --quiet --bin switchyard
exec target/debug/switchyard test examples/*/ "$@"
