"""The dead-letter topic as the explorer shows it, and re-driving one record.

Every replica reads the whole topic (it is not split between replicas like
the saga table): the newest records of each partition, with their ``x-dlq-*``
headers, where they were read, and the value as readable text. A re-drive
sends one of them back to the topic it was read from, unchanged but for its
``x-dlq-*`` headers, plus ``x-redriven-from`` naming the dead letter; only to
a topic the coordinator reads, so a forged dead letter cannot make the API
write anywhere else.

Tansu answers ListOffsets(latest) with the start of the last batch (see
`sagas.kafka.log_reader`), so the end of a partition is the highest of that and
the high watermark fetches report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagas.api.render import iso
from sagas.api.requests import ApiError
from sagas.kafka.kafka_settings import KafkaSettings

#: how long a read of the topic may take before it answers with what it has
READ_DEADLINE = 5.0
MAX_VALUE_SHOWN = 64 * 1024
REDRIVEN_FROM = "x-redriven-from"


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def letter_view(record: Any) -> dict[str, Any]:
    """One dead letter: why, where it was read, and its value (parsed when it is JSON)."""
    headers = [(k, v or b"") for k, v in (record.headers or ())]
    dlq = {k[len("x-dlq-") :]: _text(v) for k, v in headers if k.startswith("x-dlq-")}
    value: bytes = record.value or b""
    parsed: Any = None
    try:
        parsed = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        parsed = None
    original_partition = dlq.pop("partition", "") or ""
    original_offset = dlq.pop("offset", "") or ""
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso(record.timestamp / 1000) if record.timestamp else None,
        "key": _text(record.key),
        "reason": dlq.pop("reason", None),
        "detail": dlq.pop("detail", None),
        "original": {
            "topic": dlq.pop("topic", None) or None,
            "partition": int(original_partition) if original_partition.isdigit() else None,
            "offset": int(original_offset) if original_offset.isdigit() else None,
        },
        "headers": {k: _text(v) for k, v in headers if not k.startswith("x-dlq-")},
        "dlq_headers": dlq,
        "value_size": len(value),
        "value_text": _text(value[:MAX_VALUE_SHOWN]),
        "value_json": parsed,
    }


class DeadLetters:
    """Reads and re-drives records of ``topic``; ``targets``: the topics a re-drive may
    send to (those the coordinator reads)."""

    def __init__(self, kafka: KafkaSettings, topic: str, targets: Iterable[str]) -> None:
        self.kafka = kafka
        self.topic = topic
        self.targets = frozenset(targets)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _partitions(self) -> set[int]:
        """The dead-letter topic's partitions (none when it does not exist yet). Read
        through the admin client: a consumer's ``topics()`` fetches metadata without
        keeping it, so its ``partitions_for_topic`` knows nothing on Apache Kafka."""
        from events.errors import TopicMissingError
        from sagas.kafka.admin import partition_counts

        try:
            counts = await partition_counts(self.kafka, [self.topic])
        except TopicMissingError:
            return set()
        return set(range(counts[self.topic]))

    def _consumer(self) -> AIOKafkaConsumer:
        from sagas.kafka.guarantee import reader_isolation

        return AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=reader_isolation(),
            **self.kafka.consumer_kwargs(),
        )

    async def recent(self, limit: int) -> dict[str, Any]:
        """The newest ``limit`` dead letters (newest first) and how many the topic holds."""
        parts = await self._partitions()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        if not tps:
            return {"topic": self.topic, "total": 0, "letters": []}
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(tps)
            firsts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(firsts[tp], ends[tp] - limit))
            records = await self._read(consumer, tps, ends)
        finally:
            await consumer.stop()
        total = sum(max(0, ends[tp] - firsts[tp]) for tp in tps)
        records.sort(key=lambda r: (r.timestamp or 0, r.partition, r.offset), reverse=True)
        return {
            "topic": self.topic,
            "total": total,
            "letters": [letter_view(r) for r in records[:limit]],
        }

    async def _read(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[Any, int]
    ) -> list[Any]:
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        records: list[Any] = []
        deadline = time.monotonic() + READ_DEADLINE
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(*pending, timeout_ms=300)
            for batch in fetched.values():
                records.extend(batch)
            for tp in list(pending):
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records

    async def one(self, partition: int, offset: int) -> Any:
        """The dead letter at ``partition``/``offset``; 404 when there is none."""
        tp = TopicPartition(self.topic, partition)
        if partition not in await self._partitions():
            raise ApiError(404, "unknown-dead-letter", f"{self.topic} has no partition {partition}")
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + READ_DEADLINE
            while time.monotonic() < deadline:
                fetched = await consumer.getmany(tp, timeout_ms=300)
                for record in fetched.get(tp, []):
                    if record.offset >= offset:
                        if record.offset == offset:
                            return record
                        deadline = 0.0  # removed (retention): the next one is later
                        break
                highwater = consumer.highwater(tp)
                if not fetched and highwater is not None and highwater <= offset:
                    break
        finally:
            await consumer.stop()
        raise ApiError(
            404,
            "unknown-dead-letter",
            f"no dead letter at {self.topic}[{partition}]@{offset}: the offset is past the "
            f"end, or the record was removed by retention; list /deadletters for what is there",
        )

    async def redrive(self, partition: int, offset: int) -> dict[str, Any]:
        """Send the dead letter at ``partition``/``offset`` back to its original topic."""
        record = await self.one(partition, offset)
        view = letter_view(record)
        target = view["original"]["topic"]
        where = f"{self.topic}[{partition}]@{offset}"
        if not target:
            raise ApiError(
                409, "no-original-topic", f"dead letter {where} does not say where it was read"
            )
        if target not in self.targets:
            raise ApiError(
                409,
                "not-a-coordinator-topic",
                f"dead letter {where} was read from {target!r}, which this coordinator does "
                f"not read; re-drive only sends to: {', '.join(sorted(self.targets))}",
            )
        if "value-dropped" in view["dlq_headers"]:
            raise ApiError(
                409,
                "value-dropped",
                f"dead letter {where} was too large to keep its value; the original is still "
                f"at {target}[{view['original']['partition']}]@{view['original']['offset']}",
            )
        headers = [
            (k, v or b"")
            for k, v in (record.headers or ())
            if not k.startswith("x-dlq-") and k != REDRIVEN_FROM
        ]
        headers.append((REDRIVEN_FROM, where.encode()))
        producer = await self._started_producer()
        sent = await producer.send_and_wait(target, record.value, key=record.key, headers=headers)
        return {
            "redriven": True,
            "from": {"topic": self.topic, "partition": partition, "offset": offset},
            "to": {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset},
        }

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**self.kafka.producer_kwargs())
                await producer.start()
                self._producer = producer
            return self._producer
