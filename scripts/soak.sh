#!/usr/bin/env bash
# The crash-loop soak runs behind RELIABILITY.md (not part of test.sh, which
# runs short loops): 100,000 events, 20 random kill -9s each. Each prints
# the verifier's table and leaves it in target/crash-loop-<broker>-<instances>.md.
#   scripts/soak.sh                 the embedded broker (redb, then two instances
#                                   on PostgreSQL) and Apache Kafka (exactly-once,
#                                   then at-least-once; two instances on PostgreSQL)
#   scripts/soak.sh mock|pg|kafka-eos|kafka|tansu   one of them (tansu needs
#                                   scripts/setup.sh --tansu)
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
  if ! env "${@:2}" cargo test --quiet --test crash_loop -- "$1" --exact --include-ignored --nocapture >"$log" 2>&1; then
    failed=1
  fi
  grep -E '^\||test result|panicked|FAILED' "$log" || tail -40 "$log"
}
embedded=a_crash_loop_of_kill_9s_on_the_embedded_broker_loses_nothing_and_applies_everything_once
tansu=a_crash_loop_of_kill_9s_on_tansu_loses_nothing_and_applies_everything_once
kafka_eos=a_crash_loop_of_kill_9s_on_apache_kafka_with_exactly_once_has_no_duplicate
kafka_alo=a_crash_loop_of_kill_9s_on_apache_kafka_with_at_least_once_counts_its_duplicates
case "${1:-all}" in
  mock) run $embedded CRASH_INSTANCES=1 ;;
  pg) run $embedded CRASH_INSTANCES=2 ;;
  tansu) run $tansu CRASH_INSTANCES=1 ;;
  kafka-eos) run $kafka_eos CRASH_INSTANCES=2 ;;
  kafka) run $kafka_alo CRASH_INSTANCES=2 ;;
  all)
    run $embedded CRASH_INSTANCES=1
    run $embedded CRASH_INSTANCES=2
    run $kafka_eos CRASH_INSTANCES=2
    run $kafka_alo CRASH_INSTANCES=2
    ;;
  *) echo "usage: scripts/soak.sh [mock|pg|kafka-eos|kafka|tansu]" >&2; exit 2 ;;
esac
exit $failed
