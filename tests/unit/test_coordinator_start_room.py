"""The coordinator passes the admission gate's room to its batch step and counts what moved.

`Coordinator.process` with a real (unstarted) coordinator: starts read on saga.control
past ``start_room`` go out to saga.starts, are counted in ``saga_starts_deferred_total``,
and do not count as sagas in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.engine_cpu import HEADERS, PREFIX, _coordinator
from bench.loadgen import Plan, start_record
from bench.workload import write_bench_definition
from events.records import InRecord, OutRecord


async def test_starts_past_the_room_are_persisted_to_saga_starts_and_counted(
    tmp_path: Path,
) -> None:
    coordinator = _coordinator(write_bench_definition(PREFIX, tmp_path, timeout=30.0))
    sent: list[OutRecord] = []

    def persist(outgoing: Any, writes: Any) -> asyncio.Future[None]:
        sent.extend(outgoing)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    coordinator.persister.persist = persist  # type: ignore[method-assign]
    plan = Plan(
        bootstrap="", prefix=PREFIX, workload="bench", start_topic=coordinator.topics.control,
        lifecycle_topic=coordinator.topics.lifecycle, rate=1.0, count=3, fail_every=10,
    )  # fmt: skip
    starts = [
        InRecord(
            plan.start_topic, 0, i, f"s-{i}".encode(), start_record(plan, f"s-{i}", i), HEADERS
        )
        for i in range(3)
    ]
    await coordinator.process(starts, 1.0, None, start_room=1)

    moved = [out for out in sent if out.topic == coordinator.topics.starts]
    assert [(out.key, out.value) for out in moved] == [(r.key, r.value) for r in starts[1:]]
    sample = coordinator.metrics_registry.get_sample_value
    assert sample("saga_starts_deferred_total") == 2
    assert sample("saga_admission_in_flight") == 1
    assert sample("saga_started_total", {"saga": "bench"}) == 1
