"""The broker's own limit: produce -> consume round trips with plain aiokafka, one process.

Two numbers, on one topic with the system's partition count and a record the
size of a saga command (a CloudEvent of ~400 bytes, keyed by a random id):

* **pipelined**: a producer sends as fast as it can (at most ``window``
  records not yet consumed) while a consumer in the same event loop reads them
  back; rate = records consumed / time from the first send to the last read.
  This is the ceiling the system's message rate is compared with.
* **single**: one record at a time, the next sent once the previous was read;
  the round-trip latency p50/p99 is the floor under every hop of a saga.

The consumer uses the settings every consumer here uses (short fetch wait,
`KafkaSettings.consumer_kwargs`). The pipelined producer batches (5 ms linger,
256 KiB batches: the most plain aiokafka gets through); the single-record one
does not linger at all, so its round trip is the broker's and the clients' own.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stats import percentile
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings

_STAMP = struct.Struct(">dQ")  # send time, sequence number


@dataclass(frozen=True)
class Ceiling:
    topic_partitions: int
    record_bytes: int
    pipelined_records: int
    pipelined_per_s: float
    pipelined_p50_ms: float
    pipelined_p99_ms: float
    single_records: int
    single_per_s: float
    single_p50_ms: float
    single_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _payload(size: int) -> bytes:
    return os.urandom(size // 2).hex().encode()[: size - _STAMP.size]


async def measure(
    kafka: KafkaSettings,
    *,
    records: int = 100_000,
    single: int = 2_000,
    window: int = 20_000,
    record_bytes: int = 400,
    prefix: str = "",
) -> Ceiling:
    topic = f"{prefix}bench.ceiling.{uuid.uuid4().hex[:8]}"
    partitions = kafka.partitions
    await ensure_topics(kafka, [topic], partitions=partitions)
    producer = AIOKafkaProducer(linger_ms=5, max_batch_size=262_144, **kafka.aiokafka_kwargs())
    eager = AIOKafkaProducer(linger_ms=0, **kafka.aiokafka_kwargs())
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
        **kafka.consumer_kwargs(),
    )  # fmt: skip
    await producer.start()
    await eager.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now, not on the first fetch
            await consumer.position(tp)
        body = _payload(record_bytes)
        keys = [uuid.uuid4().hex.encode() for _ in range(1024)]
        # warm up connections and metadata
        await _pipelined(producer, consumer, topic, body, keys, 2_000, window)
        piped, piped_lat = await _pipelined(producer, consumer, topic, body, keys, records, window)
        one, one_lat = await _single(eager, consumer, topic, body, keys, single)
    finally:
        await consumer.stop()
        await producer.stop()
        await eager.stop()
    return Ceiling(
        topic_partitions=partitions,
        record_bytes=record_bytes,
        pipelined_records=records,
        pipelined_per_s=round(piped, 1),
        pipelined_p50_ms=round(percentile(piped_lat, 50) * 1000, 2),
        pipelined_p99_ms=round(percentile(piped_lat, 99) * 1000, 2),
        single_records=single,
        single_per_s=round(one, 1),
        single_p50_ms=round(percentile(one_lat, 50) * 1000, 2),
        single_p99_ms=round(percentile(one_lat, 99) * 1000, 2),
    )


async def _pipelined(
    producer: AIOKafkaProducer,
    consumer: AIOKafkaConsumer,
    topic: str,
    body: bytes,
    keys: list[bytes],
    n: int,
    window: int,
) -> tuple[float, list[float]]:
    received = 0
    latencies: list[float] = []
    room = asyncio.Event()
    room.set()

    async def read() -> None:
        nonlocal received
        while received < n:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    sent, _ = _STAMP.unpack_from(record.value)
                    latencies.append(now - sent)
                received += len(records)
            room.set()

    reader = asyncio.create_task(read())
    start = time.time()
    for i in range(n):
        while i - received >= window:
            room.clear()
            await room.wait()
        await producer.send(topic, _STAMP.pack(time.time(), i) + body, key=keys[i % len(keys)])
    await producer.flush()
    await asyncio.wait_for(reader, timeout=60 + n / 1000)
    return n / (time.time() - start), latencies


async def _single(
    producer: AIOKafkaProducer,
    consumer: AIOKafkaConsumer,
    topic: str,
    body: bytes,
    keys: list[bytes],
    n: int,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = time.time()
    for i in range(n):
        sent = time.time()
        await producer.send(topic, _STAMP.pack(sent, i) + body, key=keys[i % len(keys)])
        got = False
        while not got:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if _STAMP.unpack_from(record.value)[1] == i:
                        got = True
        latencies.append(time.time() - sent)
    return n / (time.time() - start), latencies
