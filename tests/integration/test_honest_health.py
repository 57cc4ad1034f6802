"""Honest health (issue 17): a worker says in one line when it is ready; when its broker
dies, `/readyz` fails and `/healthz` says why, `sagas tail` gives up in one line after
its deadline, and SIGTERM still stops the worker within seconds.

The test starts and kills a broker of its own (embedded Tansu), whatever broker the
rest of the suite uses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sagas.kafka.embedded_broker import EmbeddedBroker
from tests.integration.api_system import GROUP_TIMING, definitions_file, http
from tests.kafka_fixtures import eventually
from tests.support.processes import free_port, sagas_process

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

#: SIGTERM to exit, in every state of the worker
STOP_WITHIN = 8.0


def clean_env() -> dict[str, str]:
    """The test runner's environment without its broker and log settings: the defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SAGAS_", "KAFKA_"))}


async def test_readyz_fails_healthz_says_why_tail_gives_up_and_sigterm_stops_the_worker_when_the_broker_dies(  # noqa: E501
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    await broker.astart()
    p = f"h{uuid.uuid4().hex[:6]}."
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**GROUP_TIMING, "SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": f"{p}coordinator"}
    worker = sagas_process(
        ["worker", "-d", str(definitions_file(tmp_path, p)), "--web-port", str(port)],
        bootstrap=broker.bootstrap_servers,
        log_dir=tmp_path,
        name="worker",
        extra_env=env,
    )
    worker.env = {**clean_env(), **worker.env}  # default log level: warning
    for name in ("SAGAS_LOG_LEVEL", "SAGAS_LOG_FORMAT"):
        worker.env.pop(name, None)
    tail: subprocess.Popen[str] | None = None
    try:
        worker.start()

        def ready_line() -> str | None:
            assert worker.alive(), worker.log_tail()
            lines = [line for line in worker.log_tail(200).splitlines() if "worker ready" in line]
            return lines[0] if lines else None

        line = await eventually(ready_line, 90, 0.2, what="the worker's ready line")
        assert f"API {url}" in line and "partitions 0,1,2,3,4,5,6,7 of 8" in line, line
        assert (await asyncio.to_thread(http, "GET", f"{url}/readyz"))[0] == 200

        tail = subprocess.Popen(
            [sys.executable, "-m", "sagas", "tail", "--timeout", "6"],
            env={**clean_env(), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                 "SAGAS_TOPIC_PREFIX": p},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        following = tail.stdout.readline() if tail.stdout else ""
        assert "following" in following, following

        address = broker.bootstrap_servers
        await broker.astop()
        died = time.monotonic()

        async def not_ready() -> dict[str, object] | None:
            code, body = await asyncio.to_thread(http, "GET", f"{url}/readyz", timeout=5)
            return body if code == 503 else None

        body = await eventually(not_ready, 30, 0.2, what="/readyz to fail")
        assert "Kafka does not answer" in str(body["reason"]), body
        assert address in str(body["reason"]), body
        code, health = await asyncio.to_thread(http, "GET", f"{url}/healthz", timeout=5)
        assert code == 200 and health["status"] == "degraded", health
        assert address in health["reason"], health

        out, err = await asyncio.to_thread(tail.communicate, timeout=60)
        assert tail.returncode == 2, (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: sagas tail gave up"), err
        assert address in lines[0], err
        assert time.monotonic() - died < 40

        os.kill(worker.pid, signal.SIGTERM)
        asked = time.monotonic()
        await eventually(lambda: not worker.alive(), STOP_WITHIN, 0.1, what="SIGTERM to stop")
        assert time.monotonic() - asked < STOP_WITHIN
        assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()
        assert "Traceback" not in Path(worker.log_path).read_text(), worker.log_tail()
    finally:
        if tail is not None and tail.poll() is None:
            tail.kill()
            tail.wait()
        worker.stop()
        await broker.astop()
