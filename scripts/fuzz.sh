#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer, on nightly) of the
# envelope decoders, the config parser and the fixture parser, seeded from
# the examples' configs and fixtures. Not part of test.sh; see RELIABILITY.md.
#   scripts/fuzz.sh [SECONDS]   each target for SECONDS (default 300)
# Prints the executions per target and their total; a crash stops with the
# input saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

mkdir -p fuzz/corpus/envelope fuzz/corpus/config fuzz/corpus/fixture
for f in examples/*/router.toml tests/faults/router.toml; do
  cp "$f" "fuzz/corpus/config/$(echo "$f" | tr / _)"
done
for f in examples/*/fixtures/*/*.json tests/faults/fixtures/*/*.json tests/history/fixtures/*/*.json; do
  [ -f "$f" ] && cp "$f" "fuzz/corpus/fixture/$(echo "$f" | tr / _)"
done
# Every fixture step's record as an envelope input: headers, a blank line,
# then the value.
python3 - <<'PY'
import glob, json, os
n = 0
for path in glob.glob("examples/*/fixtures/*/*.json") + glob.glob("tests/faults/fixtures/*/*.json"):
    with open(path) as f:
        fixture = json.load(f)
    for step in fixture.get("steps", []):
        value = step.get("raw")
        if value is None:
            value = json.dumps(step.get("value"))
        head = "".join(f"{k}={v}\n" for k, v in step.get("headers", {}).items())
        with open(f"fuzz/corpus/envelope/seed-{n}", "w") as out:
            out.write(head + "\n" + value if head else value)
        n += 1
PY

total=0
for target in envelope config fixture; do
  log=$(mktemp)
  cargo +nightly fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>"$log" || {
      tail -40 "$log"; echo "fuzz: $target found a crash; see fuzz/artifacts/$target/" >&2; exit 1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "fuzz: $target: ${runs:-0} executions in ${seconds}s, no crash"
  total=$((total + ${runs:-0}))
done
echo "fuzz: $total executions in all, no crash"
