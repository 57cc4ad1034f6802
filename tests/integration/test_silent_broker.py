"""Kafka unreachable or slow (issue 17): a broker that accepts connections but never
answers gets one line from `sagas start`, `load`, `tail`, `worker`, `service` and
`topics init` within their timeouts, and SIGTERM stops a worker within seconds while it
waits for Kafka to create its topics or while it is joining its consumer group."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sagas.cli.foreground import CONNECT_TIMEOUT, PREPARE_STOP_GRACE
from sagas.kafka.admin import CONNECT_TIMEOUT as ADMIN_CONNECT_TIMEOUT
from tests.integration.api_system import definitions_file, http
from tests.kafka_fixtures import eventually
from tests.support.processes import free_port, sagas_process
from tests.unit.test_kafka_unreachable import COMMANDS, ORDER, run_sagas

pytestmark = pytest.mark.integration

#: what explaining a silent broker may add to a command's own timeout (one 5 s probe)
EXPLAIN = 6.0


class SilentBroker(str):
    """host:port, and the connections it accepted (``held``)."""

    held: list[socket.socket]


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    """host:port of a listener that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    broker = SilentBroker(f"127.0.0.1:{server.getsockname()[1]}")
    broker.held = held
    try:
        yield broker
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_sagas_start_load_and_tail_give_up_on_a_silent_broker_in_one_line(
    silent_broker: str,
) -> None:
    commands = {**COMMANDS, "tail": ["tail", "--timeout", "5"]}
    limits = {"start": CONNECT_TIMEOUT, "load": CONNECT_TIMEOUT, "tail": 5.0}
    with ThreadPoolExecutor(3) as pool:
        runs = {n: pool.submit(run_sagas, args, silent_broker) for n, args in commands.items()}
        for name, future in runs.items():
            code, out, err, took = future.result()
            assert code == 2, (name, out, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and silent_broker in lines[0], (name, err)
            assert "did not answer" in lines[0], (name, err)
            assert took < limits[name] + EXPLAIN + 5, (name, took)


@pytest.mark.parametrize("command", ["worker", "service", "topics init"])
def test_worker_service_and_topics_init_give_up_on_a_silent_broker_in_one_line(
    silent_broker: str, command: str
) -> None:
    """They waited aiokafka's 40 s request timeout and printed its log line first."""
    args = {
        "worker": ["worker", "-d", ORDER, "--web-port", str(free_port())],
        "service": ["service", "inventory"],
        "topics init": ["topics", "init", "-d", ORDER, "--wait", "1"],
    }[command]
    code, out, err, took = run_sagas(args, silent_broker, timeout=120)
    assert code == 2, (out, err)
    # the service logs its own start at info level; nothing of aiokafka's, one error
    lines = [x for x in err.strip().splitlines() if " INFO sagas.service: " not in x]
    assert len(lines) == 1 and silent_broker in lines[0], err
    assert lines[0].startswith("error: ") and "did not answer" in lines[0], err
    assert took < ADMIN_CONNECT_TIMEOUT + 2 * EXPLAIN + 5, took


def test_sigterm_stops_a_worker_that_waits_for_kafka_before_it_starts(
    silent_broker: SilentBroker,
) -> None:
    """SIGTERM came before the worker had signal handlers (creating its topics)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGAS_", "KAFKA_"))}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sagas", "worker", "-d", ORDER, "--web-port", str(free_port())],
        env={**env, "KAFKA_BOOTSTRAP_SERVERS": silent_broker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not silent_broker.held:  # it is asking Kafka about its topics
            assert worker.poll() is None and time.monotonic() < deadline, worker.poll()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        out, err = worker.communicate(timeout=PREPARE_STOP_GRACE + 10)
        took = time.monotonic() - asked
    finally:
        worker.kill()
    assert worker.returncode == 0, (out, err)
    assert err.strip().splitlines() == ["coordinator stopped before it started"], err
    assert took < PREPARE_STOP_GRACE + 2, took


# Apache Kafka completes a join in milliseconds (group.initial.rebalance.delay.ms=0), so
# there is no joining window to catch from outside and the test would time out waiting
# for one (seen in the Apache Kafka half); Tansu takes ~3 s per JoinGroup and SyncGroup.
@pytest.mark.embedded_only
@pytest.mark.asyncio
async def test_sigterm_stops_a_worker_within_seconds_while_it_joins_its_group(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = f"j{uuid.uuid4().hex[:6]}."
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    worker = sagas_process(
        ["worker", "-d", str(definitions_file(tmp_path, p)), "--web-port", str(port)],
        bootstrap=kafka_bootstrap,
        log_dir=tmp_path,
        name="worker",
        # a long join: the group waits this long for members that may still come
        extra_env={"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": f"{p}coordinator",
                   "SAGAS_REBALANCE_TIMEOUT": "120", "SAGAS_SESSION_TIMEOUT": "60"},
    ).start()  # fmt: skip
    try:

        async def joining() -> object:
            assert worker.alive(), worker.log_tail()
            code, body = await asyncio.to_thread(http, "GET", f"{url}/readyz", timeout=2)
            return code == 503 and "group" in str(body.get("reason", "")) and body

        await eventually(joining, 60, 0.05, what="the worker to be joining its group")
        os.kill(worker.pid, signal.SIGTERM)
        asked = time.monotonic()
        await eventually(lambda: not worker.alive(), 10, 0.1, what="the worker to stop")
        assert time.monotonic() - asked < 10
        assert "Traceback" not in Path(worker.log_path).read_text(), worker.log_tail()
    finally:
        worker.stop()
