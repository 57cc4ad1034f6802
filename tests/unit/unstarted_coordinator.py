"""A real coordinator that is never started (no Kafka), for tests of `Coordinator.process`.

Built as `bench.engine_cpu` builds it (the bench saga, one partition); what a batch
would persist is kept in ``sent`` instead, durable at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.engine_cpu import HEADERS, PREFIX, _coordinator
from bench.loadgen import Plan, start_record
from bench.workload import write_bench_definition
from events.records import InRecord, OutRecord
from sagas.coordinator import Coordinator


@dataclass
class Unstarted:
    coordinator: Coordinator
    #: every record the batches so far would have produced, in order
    sent: list[OutRecord] = field(default_factory=list)

    def starts(self, first: int, count: int) -> list[InRecord]:
        """Control records starting bench sagas ``s-<first>`` onwards, at offsets from ``first``."""
        c = self.coordinator
        plan = Plan(
            bootstrap="", prefix=PREFIX, workload="bench", start_topic=c.topics.control,
            lifecycle_topic=c.topics.lifecycle, rate=1.0, count=count, fail_every=10,
        )  # fmt: skip
        return [
            InRecord(
                c.topics.control, 0, i, f"s-{i}".encode(), start_record(plan, f"s-{i}", i), HEADERS
            )
            for i in range(first, first + count)
        ]

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.coordinator.metrics_registry.get_sample_value(name, labels)


def unstarted(tmp_path: Path) -> Unstarted:
    made = Unstarted(_coordinator(write_bench_definition(PREFIX, tmp_path, timeout=30.0)))

    def persist(outgoing: Any, writes: Any) -> asyncio.Future[None]:
        made.sent.extend(outgoing)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    made.coordinator.persister.persist = persist  # type: ignore[method-assign]
    return made
