#!/usr/bin/env bash
# The crash-loop soak runs behind RELIABILITY.md (not part of test.sh, which
# runs a short loop): 100,000 events, 20 random kill -9s each, on the
# embedded broker, on Tansu with durable storage, and with two instances
# sharing PostgreSQL. Each prints the verifier's table and leaves it in
# target/crash-loop-<broker>-<instances>.md.
#   scripts/soak.sh                 all three
#   scripts/soak.sh mock|tansu|pg   one of them
# CRASH_EVENTS, CRASH_KILLS and CRASH_SEED change the size and the moments.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh --test
cargo build --quiet --bin switchyard --tests
export CRASH_EVENTS="${CRASH_EVENTS:-100000}" CRASH_KILLS="${CRASH_KILLS:-20}"
export CRASH_TIMEOUT_SECS="${CRASH_TIMEOUT_SECS:-1800}"
failed=0
run() {
  echo "== crash loop: $*"
  local log
  log=$(mktemp)
  if ! env "${@:2}" cargo test --quiet --test crash_loop -- "$1" --nocapture >"$log" 2>&1; then
    failed=1
  fi
  grep -E '^\||test result|panicked|FAILED' "$log" || tail -40 "$log"
}
case "${1:-all}" in
  mock) run embedded CRASH_INSTANCES=1 ;;
  tansu) run tansu CRASH_INSTANCES=1 ;;
  pg) run embedded CRASH_INSTANCES=2 ;;
  all)
    run embedded CRASH_INSTANCES=1
    run tansu CRASH_INSTANCES=1
    run embedded CRASH_INSTANCES=2
    ;;
  *) echo "usage: scripts/soak.sh [mock|tansu|pg]" >&2; exit 2 ;;
esac
exit $failed
