"""The embedded broker's life cycle: it serves Kafka, and it never outlives its owner."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events.errors import TopicMissingError
from sagas.kafka.admin import ensure_topics, partition_counts
from sagas.kafka.broker_choice import broker_for
from sagas.kafka.embedded_broker import EmbeddedBroker, EmbeddedBrokerError
from sagas.kafka.kafka_settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.embedded_only]


def gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (children we waited for are reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def refuses(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


async def test_async_form_serves_kafka_then_stops() -> None:
    async with EmbeddedBroker() as broker:
        pid, address = broker.pid, broker.bootstrap_servers
        settings = broker.settings(KafkaSettings())
        assert await ensure_topics(settings, ["orders"], partitions=2) == {"orders": 2}
    assert pid is not None and gone(pid)
    assert refuses(address)


def test_stopped_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), EmbeddedBroker() as broker:
        pid = broker.pid
        raise RuntimeError("boom")
    assert pid is not None and gone(pid)


def test_stopped_on_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), EmbeddedBroker() as broker:
        pid = broker.pid
        raise KeyboardInterrupt
    assert pid is not None and gone(pid)


def test_memory_only_state_is_gone_after_a_restart_on_the_same_port() -> None:
    with EmbeddedBroker() as broker:
        port = broker.port
        asyncio.run(ensure_topics(broker.settings(KafkaSettings()), ["kept"], partitions=1))
    with EmbeddedBroker(port=port) as broker, pytest.raises(TopicMissingError):
        asyncio.run(partition_counts(broker.settings(KafkaSettings()), ["kept"]))


def test_a_failed_start_explains_itself_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port=port, startup_timeout=10)
        with pytest.raises(EmbeddedBrokerError, match=f"127.0.0.1:{port}"):
            broker.start()
    assert not broker.running


def test_broker_for_uses_the_configured_cluster_without_starting_one() -> None:
    settings = KafkaSettings(bootstrap_servers="kafka-1:9092,kafka-2:9092")
    with broker_for(settings) as bootstrap:
        assert bootstrap == "kafka-1:9092,kafka-2:9092"


async def test_broker_for_starts_and_stops_an_embedded_one() -> None:
    settings = KafkaSettings(bootstrap_servers=None)
    async with broker_for(settings) as bootstrap:
        created = await ensure_topics(settings.with_bootstrap(bootstrap), ["t"])
        assert created == {"t": settings.partitions}
    assert refuses(bootstrap)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_sagas_broker_command_stops_its_broker(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sagas", "broker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "`sagas broker` printed nothing within 30s"
        first_line = process.stdout.readline()  # printed once the broker answers
        assert "listening on" in first_line, process.stderr.read() if process.stderr else ""
        address = first_line.rsplit(" ", 1)[-1].strip()
        assert not refuses(address)

        process.send_signal(stop_signal)
        assert process.wait(15) == 0
        deadline = time.monotonic() + 5
        while not refuses(address) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert refuses(address), "the broker outlived `sagas broker`"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


OWNER = """
import sys
from sagas.kafka.embedded_broker import EmbeddedBroker
broker = EmbeddedBroker().start()
print(broker.pid, broker.bootstrap_servers, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_the_broker_dies_with_an_owner_killed_without_cleanup() -> None:
    """SIGKILL runs no ``finally`` and no atexit: only the kernel can stop the broker."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    broker_pid = None
    try:
        assert owner.stdout is not None
        ready, _, _ = select.select([owner.stdout], [], [], 30)
        assert ready, "the owner printed nothing within 30s"
        pid_text, address = owner.stdout.readline().split()
        broker_pid = int(pid_text)
        assert not refuses(address)

        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while not gone(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(broker_pid), "the broker outlived its SIGKILLed owner"
        assert refuses(address)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if broker_pid is not None and not gone(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)
