"""The order saga with the reference services, for the saga explorer's tests.

One coordinator (with an API token) and the inventory, payment and shipping
services on the test broker. Failures are the services' own injection: the
carrier refuses the shipments of half the saga ids (decided by the id, so a
test picks ids it knows the outcome of), and payment answers every command
3 s late (still inside its 5 s deadline), so a saga stays in flight long
enough to be aborted from a page.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from services.shipping.domain import carrier_refuses
from tests.integration.api_system import TOKEN, http
from tests.support.kafka_peers import eventually
from tests.support.order_saga import OrderSaga, fast_group_env, order
from tests.support.processes import ManagedProcess, free_port

SERVICES = """
payment:
  late: {probability: 1.0, delay: 3.0}
shipping:
  failure_rate: 0.5
"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screens_dir() -> Path:
    """Where the browser tests leave their screenshots (printed by the tests)."""
    folder = Path(
        os.environ.get("SAGAS_UI_SCREENS") or Path(tempfile.gettempdir()) / "sagas-ui-screens"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def need_chromium() -> str:
    """The system Chromium, or a skip (a failure under CI) saying how to get it."""
    missing = []
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        missing.append("Debian's chromium package (scripts/system-deps.sh installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install -e '.[dev]')")
    if not missing:
        return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    why = f"the browser tests need {' and '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(f"{why}, and CI is set: they must run in CI")
    pytest.skip(why)


def saga_ids(refused: bool, prefix: str = "ui") -> Iterator[str]:
    """Fresh saga ids whose shipment the carrier refuses (or accepts)."""
    for n in itertools.count():
        saga_id = f"{prefix}-{uuid.uuid4().hex[:10]}-{n}"
        if carrier_refuses(saga_id, 0.5) == refused:
            yield saga_id


def process_survives(process: ManagedProcess, seconds: float = 1.0) -> bool:
    """False if ``process`` exits within ``seconds`` (a bad setting fails at once)."""
    assert process.proc is not None
    try:
        process.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


class ExplorerSystem(OrderSaga):
    """`OrderSaga` whose coordinator serves its API on a port the test knows."""

    def __init__(self, kafka: KafkaSettings, folder: Path, embedded: bool) -> None:
        prefix = f"ui{uuid.uuid4().hex[:8]}."
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.require_bootstrap()}
        super().__init__(
            kafka, prefix, folder, env=env, services_config=SERVICES, embedded=embedded
        )
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.ids_refused = saga_ids(True)
        self.ids_accepted = saga_ids(False)
        self.orders = itertools.count(1)

    async def start_all(self) -> None:
        await self.create_topics()
        path = definitions.write("order_orchestrated", self.prefix, self.folder)
        env = {
            "SAGAS_APP_ID": f"{self.prefix}coordinator",
            "SAGAS_API_TOKEN": TOKEN,
            **fast_group_env(self.embedded),
        }
        self._sagas(
            "coordinator", ["worker", "-d", str(path), "--web-port", str(self.web_port)], env
        )
        for name in ("inventory", "payment", "shipping"):
            self.start_service(name)
        for process in self.processes.values():
            if not await asyncio.to_thread(process_survives, process):
                raise AssertionError(f"{process.name} exited at once:\n{process.log_tail()}")
        await self.ready("inventory", "payment", "shipping", timeout=60)
        await eventually(
            lambda: http("GET", f"{self.url}/readyz", timeout=2)[0] == 200,
            90,
            lambda: f"the coordinator ready at {self.url}; logs:\n{self.logs()}",
        )

    async def place_order(self, *, refused: bool) -> tuple[str, str]:
        """Place one order; (saga id, order id)."""
        saga_id = next(self.ids_refused if refused else self.ids_accepted)
        number = next(self.orders)
        data = order(number, sku="SKU-001")
        data["order_id"] = f"ord-{self.prefix[2:10]}-{number:04d}"
        await self.place([(saga_id, data)])
        return saga_id, data["order_id"]

    async def send_garbage(self, topic: str, key: str) -> None:
        """A record the coordinator cannot decode: it goes to the dead-letter topic."""
        producer = AIOKafkaProducer(**self.kafka.aiokafka_kwargs())
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topic(topic), b"this is not a CloudEvent", key=key.encode()
            )
        finally:
            await producer.stop()
