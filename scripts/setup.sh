#!/usr/bin/env bash
# Installs what building and running Switchyard needs, skipping what is
# already present. Safe to run again and again.
#   scripts/setup.sh          the wasm target and kcat
#   scripts/setup.sh --test   also what the tests need: rustfmt and clippy,
#                             promtool, chromium,
#                             PostgreSQL, confluent-kafka and componentize-py
#                             (PyPI), componentize-js (npm) with weval
#                             (crates.io, for its ahead-of-time mode), the Apache
#                             Kafka broker (Maven Central, pinned in
#                             scripts/kafka/pom.xml), and the Kafka Streams
#                             baseline (scripts/kstreams.sh)
#   scripts/setup.sh --tansu  the Tansu broker with durable storage, for
#                             scripts/tansu.sh only (a ~20 minute build, once)
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! have cargo; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi

# Plugins are WebAssembly components built for wasm32-wasip2.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

# rustfmt, for the test command's format check, and clippy, for
# scripts/lint.sh (rustup's minimal profile leaves both out).
if [ "${1:-}" = "--test" ]; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      echo "setup: adding the $component component"
      rustup component add "$component"
    fi
  done
fi

# kcat: the command-line Kafka client the README and the tests use.
if ! have kcat; then
  echo "setup: installing kcat"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
fi

# Tansu: an independent Kafka-compatible broker, kept for scripts/tansu.sh.
# It is no longer in the default suite: Apache Kafka is the reference broker.
if [ "${1:-}" = "--tansu" ]; then
  # Tansu: an independent Kafka-compatible broker for the end-to-end tests,
  # with libsql for durable storage (`sqlite://`), so that a test can restart
  # it without losing its records. An older install without libsql is rebuilt.
  tansu_has_libsql() {
    grep -o '"tansu [^}]*}' "$HOME/.cargo/.crates2.json" 2>/dev/null | grep -q '"libsql"'
  }
  if ! tansu_has_libsql; then
    echo "setup: installing tansu with durable storage (a long build, done once)"
    cargo install tansu --locked --features dynostore,libsql --quiet
  fi
  exit 0
fi

[ "${1:-}" = "--test" ] || exit 0

# promtool (Debian's prometheus) checks /metrics; headless Chromium renders
# the admin status page.
missing=()
have promtool || missing+=(prometheus)
have chromium || missing+=(chromium)
# PostgreSQL: the shared state store's tests start their own server with
# Debian's initdb and pg_ctl (as the `postgres` user the package creates).
if ! have initdb && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# confluent-kafka: the outside client for the Tansu tests (a current
# librdkafka; Debian's kcat fails Tansu's handshake), and the benchmark's
# plain Python baseline (bench/python/payment.py).
if ! python3 -c "import confluent_kafka" 2>/dev/null; then
  echo "setup: installing confluent-kafka"
  python3 -m pip install --quiet confluent-kafka
fi

# The Python and JavaScript plugin toolchains (pinned): componentize-py from
# PyPI, componentize-js from npm.
if ! have componentize-py; then
  echo "setup: installing componentize-py"
  python3 -m pip install --quiet componentize-py==0.25.1
fi
if ! have componentize-js; then
  if ! have npm; then
    echo "setup: installing npm"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  echo "setup: installing componentize-js"
  as_root npm install --global --silent @bytecodealliance/componentize-js@0.23.0
fi
# weval: componentize-js's ahead-of-time compiler (`--aot`), which makes a
# JavaScript plugin's events 1.4 times faster (BENCHMARKS.md, P8). Its npm
# package downloads the binary from GitHub on first use, so it is built from
# crates.io instead (about 6 minutes, once), pinned to the version
# componentize-js 0.23.0 asks for. JavaScript plugins build with `--aot`
# when `weval` is on the PATH.
if [ "$(weval --version 2>/dev/null)" != "weval 0.5.0" ]; then
  echo "setup: installing weval 0.5.0 (a build of a few minutes, once)"
  cargo install weval --version 0.5.0 --locked --quiet
fi

# Apache Kafka: the reference broker of the end-to-end tests, the crash
# loops and the benchmarks. The jars come from Maven Central, pinned in
# scripts/kafka/pom.xml, into ~/.cache/switchyard/kafka/<version> (or
# $SWITCHYARD_KAFKA_JARS); the tests start it with `java` on free ports.
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
kafka_jars=${SWITCHYARD_KAFKA_JARS:-$HOME/.cache/switchyard/kafka/$kafka_version}
if [ ! -f "$kafka_jars/.complete" ]; then
  if ! have java || ! have mvn; then
    echo "setup: installing Java 17 and Maven"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  fi
  echo "setup: fetching Apache Kafka $kafka_version into $kafka_jars"
  rm -rf "$kafka_jars"
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$kafka_jars"
  touch "$kafka_jars/.complete"
fi

# The Kafka Streams baseline of the benchmark's P1 and tests/kstreams.rs
# (bench/kstreams, Kafka Streams from Maven Central), unless up to date.
if have mvn; then
  scripts/kstreams.sh >/dev/null
fi

if ! have cargo-nextest; then
  echo "setup: cargo-nextest not found; tests will run with cargo test"
fi
