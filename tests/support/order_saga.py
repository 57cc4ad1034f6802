"""The shipped order saga as processes, for tests that swap one participant for another.

``OrderSaga`` runs the coordinator (``sagas worker``) and any of the reference
services (``sagas service``) as child processes against one broker, with a
topic prefix of its own; the test brings the participant under test (a kcat
script, the HTTP bridge). Every process gets its Kafka settings from the
environment only: ``env`` holds ``KAFKA_*`` (and may hold TLS settings).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from events.topics import Topics
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from services import definitions
from services.topics import ServiceTopics
from tests.support.kafka_peers import TopicRecorder, eventually
from tests.support.processes import ManagedProcess, free_port


def fast_group_env(embedded: bool) -> dict[str, str]:
    """Coordinator group timeouts: short on the embedded broker (joins take half the session
    timeout there), the defaults on a real cluster (which refuses short ones)."""
    if not embedded:
        return {}
    return {
        "SAGAS_SESSION_TIMEOUT": "3",
        "SAGAS_HEARTBEAT_INTERVAL": "0.5",
        "SAGAS_REBALANCE_TIMEOUT": "2",
    }


def order(
    i: int, *, customer: str = "c1", sku: str = "A", qty: int = 1, amount: int = 1000
) -> dict[str, Any]:
    return {
        "order_id": f"o{i}",
        "customer_id": customer,
        "amount": amount,
        "lines": [{"sku": sku, "qty": qty}],
    }


class Recorder(TopicRecorder):
    """Every event on some topics, read from the beginning, with any client settings."""

    def __init__(self, kafka: KafkaSettings, *topics: str) -> None:
        super().__init__(kafka.bootstrap_servers or "", *topics)
        self.kafka = kafka

    def client_kwargs(self) -> dict[str, Any]:
        return self.kafka.consumer_kwargs()


class OrderSaga:
    """Coordinator + chosen reference services for the orchestrated order saga."""

    def __init__(
        self,
        kafka: KafkaSettings,
        prefix: str,
        folder: Path,
        *,
        env: dict[str, str],
        services_config: str = "",
        embedded: bool = True,
    ) -> None:
        self.kafka = kafka.model_copy(update={"topic_prefix": prefix})
        self.prefix = prefix
        self.folder = folder
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SAGAS_"))},
            "PYTHONUNBUFFERED": "1",
            "SAGAS_TOPIC_PREFIX": prefix,
            **env,
        }
        self.embedded = embedded
        self.topics = ServiceTopics.with_prefix(prefix)
        self.engine = Topics.with_prefix(prefix)
        self.config = folder / "services.yaml"
        self.config.write_text(f"topic_prefix: '{prefix}'\nmode: orchestrated\n{services_config}")
        self.processes: dict[str, ManagedProcess] = {}
        self.ports: dict[str, int] = {}
        self._producer: AIOKafkaProducer | None = None

    def topic(self, name: str) -> str:
        return self.prefix + name

    async def create_topics(self) -> None:
        # Up front: a consumer that subscribes first could let the broker auto-create a
        # topic with its default partition count, which the coordinator refuses.
        await ensure_topics(self.kafka, [*self.topics.all(), *self.engine.all()])

    @staticmethod
    def sagas_command() -> list[str]:
        return [sys.executable, "-m", "sagas"]

    def _sagas(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        cmd = [*self.sagas_command(), *args]
        process = ManagedProcess(
            cmd, {**self.env, **(env or {})}, self.folder / f"{name}.log", name
        ).start()
        self.processes[name] = process
        return process

    def start_coordinator(self, env: dict[str, str] | None = None) -> ManagedProcess:
        path = definitions.write("order_orchestrated", self.prefix, self.folder)
        env = {
            "SAGAS_APP_ID": f"{self.prefix}coordinator",
            **fast_group_env(self.embedded),
            **(env or {}),
        }
        return self._sagas(
            "coordinator", ["worker", "-d", str(path), "--web-port", str(free_port())], env
        )

    def start_service(self, name: str, env: dict[str, str] | None = None) -> ManagedProcess:
        self.ports[name] = free_port()
        args = [
            "service",
            name,
            "--config",
            str(self.config),
            "--metrics-port",
            str(self.ports[name]),
        ]
        return self._sagas(name, args, env)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """Any other process (the participant under test), with the same environment."""
        process = ManagedProcess(
            args, {**self.env, **(env or {})}, self.folder / f"{name}.log", name
        )
        self.processes[name] = process.start()
        return process

    def get(self, name: str, path: str) -> Any:
        try:
            url = f"http://127.0.0.1:{self.ports[name]}{path}"
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    async def ready(self, *names: str, timeout: float = 30) -> None:
        for name in names:
            await eventually(
                lambda name=name: (self.get(name, "/health") or {}).get("ready"),
                timeout,
                lambda name=name: f"{name} ready; logs:\n{self.logs()}",
            )

    def logs(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {name}\n{process.log_tail(lines)}" for name, process in self.processes.items()
        )

    async def place(self, orders: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
        """Publish ``order.placed`` for each (saga id, order); returns the saga ids."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(**self.kafka.aiokafka_kwargs())
            await self._producer.start()
        ids = []
        for saga_id, data in orders:
            event = new_event("order.placed", source="test", sagaid=saga_id, data=data)
            value, headers = encode(event)
            await self._producer.send_and_wait(
                self.topics.orders, value, key=saga_id.encode(), headers=headers
            )
            ids.append(saga_id)
        return ids

    async def wait_terminal(
        self, lifecycle: Recorder, ids: list[str], timeout: float = 60
    ) -> dict[str, str]:
        def done() -> dict[str, str] | None:
            seen = lifecycle.terminal()
            return {i: seen[i] for i in ids} if all(i in seen for i in ids) else None

        return await eventually(
            done,
            timeout,
            lambda: f"terminal states of {ids}, got {lifecycle.terminal()}; logs:\n{self.logs()}",
        )

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        for process in self.processes.values():
            process.stop()
            # A script's children (kcat) share its process group: none may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
