"""Kafka unreachable (issue 17): `sagas start`, `load` and `tail` say so in one line and
exit 2, at once when nothing listens (a broker that accepts connections but never answers
is tested in tests/integration/test_kafka_unreachable.py: it takes their timeouts)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = str(ROOT / "services" / "definitions" / "order_orchestrated.yaml")
NOWHERE = "127.0.0.1:9"

COMMANDS = {
    "start": ["start", "order", "-d", ORDER, "--data", '{"order_id": "o-1"}'],
    "load": ["load", "--count", "1"],
    "tail": ["tail"],
}


def run_sagas(args: list[str], bootstrap: str, timeout: float = 60) -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGAS_", "KAFKA_"))}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sagas", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sagas_commands_say_in_one_line_that_nothing_listens_at_the_broker(command: str) -> None:
    code, out, err, took = run_sagas(COMMANDS[command], NOWHERE)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no aiokafka log lines, no "Unclosed AIOKafkaProducer"
    assert (
        lines[0]
        == f"error: nothing listens at {NOWHERE} (KAFKA_BOOTSTRAP_SERVERS): is the broker running?"
    )  # noqa: E501
    assert took < 10, took
