"""Read topics from the beginning, a piece at a time, without a consumer group.

`TopicTail.read_new()` returns every record appended since the previous call,
up to the end of each partition as it is *now*. The audits keep their own
state between calls, so a shared system is read once in all, not once per
scenario.

"The end" is found by fetching until a fetch comes back empty with every
position at or past the ``end_offsets`` snapshot: Tansu 0.6 answers
``ListOffsets(latest)`` with the last batch's first offset + 1, so the
snapshot alone may stop short (see `sagas.participants.participant_io.replay_changelog`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.kafka.kafka_settings import KafkaSettings

#: records can be up to ~1 MiB (the fuzzer's huge values) plus headers
FETCH_BYTES = 8 * 1024 * 1024


class TopicTail:
    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self.kafka = kafka
        self.topics = sorted(set(topics))
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def start(self) -> TopicTail:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES,
            fetch_max_bytes=4 * FETCH_BYTES,
            **self.kafka.consumer_kwargs(),
        )
        await consumer.start()
        self._consumer = consumer
        tps = []
        for topic in self.topics:
            parts: set[int] | None = None
            for _ in range(100):
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    break
                await asyncio.sleep(0.1)
            if not parts:
                raise RuntimeError(f"topic {topic} does not exist")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._tps = tps
        return self

    async def read_new(self, idle_ms: int = 800) -> list[Any]:
        """Every record appended since the last call (in partition order per partition)."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        end = await consumer.end_offsets(self._tps)
        out: list[Any] = []
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms, max_records=20_000)
            for records in batch.values():
                out += records
            if batch:
                continue
            positions = [await consumer.position(tp) for tp in self._tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, self._tps, strict=True)):
                return out

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
