#!/usr/bin/env bash
# `make test`: the embedded-broker half and the Apache Kafka half at the same time, then
# the compiled build's tests.
#
# Each half spends most of its wall time waiting on processes and brokers (together
# they used ~0.7 of a core over 27 minutes run one after the other), so side by side
# they finish in about the time of the longer one. The embedded half prints to the
# terminal as it goes; the Apache Kafka half writes to $KAFKA_LOG, which is printed
# in full when it ends. Either failing fails the run; Ctrl-C stops both.
set -uo pipefail

PYTEST=${PYTEST:?PYTEST (the pytest command) must be set by the Makefile}
LOGS=${TEST_LOGS:-.test-logs}
mkdir -p "$LOGS"
KAFKA_LOG="$LOGS/kafka-half.log"

make --no-print-directory test-kafka-if-available >"$KAFKA_LOG" 2>&1 &
kafka_pid=$!
trap 'kill -TERM -- "$kafka_pid" 2>/dev/null; wait "$kafka_pid" 2>/dev/null; exit 130' INT TERM
echo "make test: the Apache Kafka half runs meanwhile; its output: $KAFKA_LOG"

$PYTEST tests -q
embedded=$?

# The optional compiled build (issue 19): its own copy of the checkout, built and tested
# after the embedded half, while the Apache Kafka half may still run.
echo "make test: the compiled build's tests (make test-compiled)"
make --no-print-directory test-compiled-if-available
compiled=$?

if kill -0 "$kafka_pid" 2>/dev/null; then
    echo "make test: embedded half done (exit $embedded); waiting for the Apache Kafka half" \
        "(tail -f $KAFKA_LOG to follow it)"
fi
wait "$kafka_pid"
kafka=$?
echo "================ the Apache Kafka half ($KAFKA_LOG) ================"
cat "$KAFKA_LOG"
echo "make test: embedded half exit $embedded, compiled build exit $compiled," \
    "Apache Kafka half exit $kafka"
[ "$embedded" -eq 0 ] && [ "$compiled" -eq 0 ] && [ "$kafka" -eq 0 ]
