#!/usr/bin/env bash
# The Tansu runs, out of the default suite since Apache Kafka became the
# reference broker: every catalog example, a late topic and a broker restart
# on Tansu (tests/tansu_e2e.rs), and the short crash loop with one static
# member. Installs Tansu with durable storage first (a ~20 minute build, once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tansu
scripts/build-plugins.sh --test
cargo build --quiet --bin switchyard --tests
cargo test --test tansu_e2e -- --ignored
cargo test --test crash_loop -- --ignored --exact \
  a_crash_loop_of_kill_9s_on_tansu_loses_nothing_and_applies_everything_once
