#!/usr/bin/env bash
# The benchmarks (not tests): builds the plugins and a release host, runs
# every measure side by side, and rewrites BENCHMARKS.md with the results.
#   scripts/bench.sh            every measure (about 8 minutes after the build)
#   scripts/bench.sh p1,p2      some of them (p1 p2 p3 p4 p5 p6 p7 p8 p9), printed only
set -euo pipefail
cd "$(dirname "$0")/.."
# --test: PostgreSQL for P6, and Tansu for P1 when it can be built.
scripts/build-plugins.sh --test
cargo build --quiet --release --bin switchyard --example bench
results=$(mktemp)
target/release/examples/bench "$@" | tee "$results"
if [ $# -eq 0 ]; then
  {
    sed -n '1,/^<!-- results -->$/p' BENCHMARKS.md
    cat "$results"
    sed -n '/^<!-- end of results -->$/,$p' BENCHMARKS.md
  } > BENCHMARKS.md.new
  mv BENCHMARKS.md.new BENCHMARKS.md
  echo "bench: BENCHMARKS.md updated"
fi
