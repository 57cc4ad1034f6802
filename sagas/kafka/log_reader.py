"""Read partitions of a topic from their beginning to their end, once.

What a changelog-backed process does when it starts or takes over partitions:
rebuild its state by reading every record written so far, and stop there.
"The end" is the high watermark a fetch reports, not only what ListOffsets
says: Tansu 0.6 answers ListOffsets(latest) with the base offset of the last
record batch + 1 (13 records in two batches reported an end of 6), and
trusting it would drop the newest records. On Apache Kafka both agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.kafka.kafka_settings import KafkaSettings

__all__ = ["read_to_end"]


async def read_to_end(
    kafka: KafkaSettings,
    partitions: Iterable[TopicPartition],
    *,
    max_records: int = 10_000,
    idle_timeout: float = 30.0,
    isolation: str = "read_uncommitted",
) -> AsyncIterator[list[Any]]:
    """Yield the records of ``partitions`` in batches, each partition in offset order.

    Stops when every partition has been read up to its end as of the start
    (records written meanwhile may or may not be included). Raises
    ``TimeoutError`` naming the partitions when nothing arrives for
    ``idle_timeout`` seconds while records are still missing. With ``isolation``
    ``read_committed`` the end is the last stable offset: records of open or aborted
    transactions are never yielded.
    """
    tps = sorted(set(partitions))
    if not tps:
        return
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        **kafka.consumer_kwargs(),
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=200, max_records=max_records)
            batch: list[Any] = []
            for tp, records in fetched.items():
                ends[tp] = max(ends[tp], _fetched_end(consumer, tp, isolation) or 0)
                batch.extend(r for r in records if r.offset < ends[tp])
            for tp in list(pending):
                highwater = _fetched_end(consumer, tp, isolation)
                if highwater is not None:
                    ends[tp] = max(ends[tp], highwater)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if batch:
                last_progress = loop.time()
                yield batch
            elif pending and loop.time() - last_progress > idle_timeout:
                raise TimeoutError(
                    f"reading {', '.join(f'{tp.topic}[{tp.partition}]' for tp in sorted(pending))} "
                    f"to its end (offsets {[ends[tp] for tp in sorted(pending)]}) made no progress "
                    f"for {idle_timeout:.0f}s on {kafka.bootstrap_servers}; is the broker up?"
                )
    finally:
        await consumer.stop()


def _fetched_end(consumer: AIOKafkaConsumer, tp: TopicPartition, isolation: str) -> int | None:
    """The end a fetch reported: the high watermark, or under read_committed the last
    stable offset (records past it belong to a transaction still open)."""
    if isolation == "read_committed":
        return consumer.last_stable_offset(tp)
    return consumer.highwater(tp)
