#!/usr/bin/env bash
# Builds the Kafka Streams baseline (bench/kstreams, Maven; Kafka Streams from
# Maven Central at the broker's version) into bench/kstreams/target/:
# kstreams.jar and its dependencies in lib/. Skips the build when the jar is
# newer than the pom and every source. Prints the classpath to run it with:
#   java -cp "$(scripts/kstreams.sh)" dev.switchyard.kstreams.PaymentStreams --help
set -euo pipefail
cd "$(dirname "$0")/../bench/kstreams"
jar=target/kstreams.jar
if [ ! -f target/lib/.complete ] || [ ! -f "$jar" ] ||
  [ -n "$(find pom.xml src -newer "$jar" -print -quit)" ]; then
  if ! command -v mvn >/dev/null 2>&1; then
    echo "kstreams: mvn not found; run scripts/setup.sh --test" >&2
    exit 1
  fi
  echo "kstreams: building bench/kstreams" >&2
  rm -rf target/lib
  log=$(mktemp)
  if ! mvn -q -B package >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  touch target/lib/.complete
fi
echo "$PWD/$jar:$PWD/target/lib/*"
