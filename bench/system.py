"""The system under test, started by `services.launch.Launcher` as separate OS processes.

* ``bench``: broker, coordinator, and `bench.participant` (all four steps of the
  bench saga in one process) instead of the reference services;
* ``order``: broker, coordinator and the four reference services with the
  shipped ``order_orchestrated`` saga, the carrier refusing 10% of shipments.

The coordinator runs with its production log level (``warning``): what is
measured is the engine, not its log volume. The bench participant serves
``/health`` like a service, so the launcher's readiness probe covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.workload import write_bench_definition
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.process.free_ports import free_port
from services.launch import ChildProcess, Launcher, SystemConfig

PARTICIPANT = "bench-participant"
#: a stock no order run can exhaust, so no order fails for want of it
PLENTY = 10**12


class BenchLauncher(Launcher):
    """A `Launcher` whose coordinator runs the bench saga, served by `bench.participant`."""

    def __init__(self, config: SystemConfig, *, step_timeout: float, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.step_timeout = step_timeout

    def _write_definitions(self) -> list[Path]:
        from bench.workload import bench_definition
        from sagas.builder import definition_from_dict

        path = write_bench_definition(self.prefix, self.run_dir, timeout=self.step_timeout)
        self.definitions.append(
            definition_from_dict(bench_definition(self.prefix, timeout=self.step_timeout))
        )
        return [path]

    async def start(self) -> Launcher:
        await super().start()
        port = free_port()
        child = ChildProcess(
            PARTICIPANT,
            [sys.executable, "-m", "bench.participant", "--prefix", self.prefix,
             "--http-port", str(port)],
            self._env({}),
            self.run_dir / f"{PARTICIPANT}.log",
            http_port=port,
        )  # fmt: skip
        self.children[PARTICIPANT] = child.start()
        await self.wait_ready(PARTICIPANT)
        return self


def coordinator_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Deployed as recommended: a stable instance id (a pod name in Kubernetes), so that a
    # restarted coordinator takes its partitions back at once instead of after its old
    # session expires.
    env = {"SAGAS_LOG_LEVEL": "warning", "SAGAS_INSTANCE_ID": "bench-coordinator-1"}
    return {**env, **(extra or {})}


@contextlib.asynccontextmanager
async def launch(
    workload: str,
    run_dir: Path,
    *,
    kafka: KafkaSettings | None = None,
    step_timeout: float = 900.0,
    extra_coordinator_env: dict[str, str] | None = None,
) -> AsyncIterator[Launcher]:
    """The running system for ``workload`` ("bench" or "order"); stopped on exit."""
    env = coordinator_env(extra_coordinator_env)
    launcher: Launcher
    if workload == "bench":
        config = SystemConfig(services=(), coordinator_env=env, ready_timeout=90.0)
        launcher = BenchLauncher(config, step_timeout=step_timeout, run_dir=run_dir, kafka=kafka)
    else:
        services_config = {
            "shipping": {"failure_rate": 0.1},
            "inventory": {"initial_stock": {"SKU-001": PLENTY}},
        }
        config = SystemConfig(
            mode="orchestrated",
            services_config=services_config,
            coordinator_env=env,
            ready_timeout=90.0,
        )
        launcher = Launcher(config, run_dir=run_dir, kafka=kafka)
    async with launcher:
        yield launcher


def pids(system: Launcher) -> dict[str, int]:
    """PID of every process of the system that runs now (the broker when embedded)."""
    out = {c.name: c.pid for c in system if c.alive and c.pid is not None}
    if system.broker is not None and system.broker.pid is not None:
        out["broker"] = system.broker.pid
    return out


def pause(child: ChildProcess) -> None:
    """SIGSTOP: the process keeps its connections but does nothing (a participant that
    does not answer)."""
    child.signal(signal.SIGSTOP)


def resume(child: ChildProcess) -> None:
    child.signal(signal.SIGCONT)


async def records_written(kafka: KafkaSettings, prefix: str) -> int:
    """How many records every topic of the run holds (sum of the end offsets)."""
    from sagas.kafka.admin import admin_client, partition_counts

    async with admin_client(kafka) as admin:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
    if not topics:
        return 0
    # The partitions from the admin's metadata: a consumer's `topics()` fetches metadata
    # without keeping it, so its `partitions_for_topic` knows none of them.
    counts = await partition_counts(kafka, topics)
    tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
    consumer = AIOKafkaConsumer(group_id=None, **kafka.consumer_kwargs())
    await consumer.start()
    try:
        ends = await asyncio.wait_for(consumer.end_offsets(tps), 30)
        return sum(ends.values())
    finally:
        await consumer.stop()
