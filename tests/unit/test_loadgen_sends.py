"""The load generator sends every start once, batched per partition, never queueing a
partition's batch behind one in flight (aiokafka would make it wait, holding back the
starts of every partition)."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.loadgen import Plan, Tracker, _send
from events.partitioning import partition_for

PARTITIONS = 4
ROUND_TRIP = 0.02  # seconds a batch takes to be acknowledged: longer than SEND_TICK


class Builder:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def append(self, *, timestamp: Any, key: bytes, value: bytes, headers: Any) -> object:
        self.keys.append(key)
        return object()


class SlowProducer:
    """What `send_grouped` uses of an AIOKafkaProducer; each batch is acknowledged after
    `ROUND_TRIP`, and one queued while its partition's last batch is in flight fails."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[bytes], asyncio.Future[None]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def create_batch(self) -> Builder:
        return Builder()

    async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> Any:
        busy = [f for p, _, f in self.batches if p == partition and not f.done()]
        assert not busy, f"partition {partition}: a batch queued behind one in flight"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        loop.call_later(ROUND_TRIP, done.set_result, None)
        self.batches.append((partition, builder.keys, done))
        return done

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a start went out on its own, not in a batch")


async def test_every_start_goes_once_in_order_one_batch_in_flight_per_partition() -> None:
    plan = Plan(
        bootstrap="", prefix="p.", workload="bench", start_topic="p.saga.starts",
        lifecycle_topic="p.saga.lifecycle", rate=4000.0, count=300, label="lg",
    )  # fmt: skip
    producer, tracker = SlowProducer(), Tracker()
    await _send(plan, producer, tracker)  # type: ignore[arg-type]

    keys = [f"lg-{i}".encode() for i in range(plan.count)]
    assert list(tracker.due) == keys  # each due time recorded, in order
    for partition in range(PARTITIONS):
        sent = [k for p, batch, _ in producer.batches if p == partition for k in batch]
        assert sent == [k for k in keys if partition_for(k, PARTITIONS) == partition]
    assert all(f.done() for _, _, f in producer.batches)  # _send waits for every batch
    # batched: far fewer batches than starts (a 75 ms schedule, 20 ms round trips)
    assert len(producer.batches) < plan.count / 4
