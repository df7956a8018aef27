#!/usr/bin/env bash
# Installs what building and running Switchyard needs, skipping what is
# already present. Safe to run again and again.
#   scripts/setup.sh          the wasm target and kcat
#   scripts/setup.sh --test   also what the tests need: promtool, chromium,
#                             PostgreSQL, confluent-kafka and componentize-py
#                             (PyPI), componentize-js (npm) and the Tansu
#                             broker with durable storage (a ~20 minute build,
#                             once)
set -euo pipefail

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

# kcat: the command-line Kafka client the README and the tests use.
if ! have kcat; then
  echo "setup: installing kcat"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
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
# librdkafka; Debian's kcat fails Tansu's handshake).
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

if ! have cargo-nextest; then
  echo "setup: cargo-nextest not found; tests will run with cargo test"
fi
