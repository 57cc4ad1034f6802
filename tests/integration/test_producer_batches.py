"""Records queued per partition in producer batches land where the default partitioner puts
them, in order, large and unkeyed ones included."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.producer_batches import SINGLE_SEND_BYTES, batching_producer, send_grouped

PARTITIONS = 4


async def test_grouped_records_keep_partition_and_order(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    other = unique_topic + ".other"
    await ensure_topics(kafka_settings, [unique_topic, other], partitions=PARTITIONS)
    big = b"B" * (SINGLE_SEND_BYTES + 10)
    records: list[OutRecord] = []
    for n in range(600):
        key = f"saga-{n % 7}".encode()
        value = big if n == 300 else f"{n}".encode()
        records.append(OutRecord(unique_topic, key, value, [("n", str(n).encode())]))
        if n % 50 == 0:
            records.append(OutRecord(other, None, f"unkeyed-{n}".encode(), []))
    records.append(OutRecord(other, b"pinned", b"to-3", [], 3))

    producer = AIOKafkaProducer(**kafka_settings.aiokafka_kwargs(), max_request_size=2**21)
    await producer.start()
    try:
        futures = await send_grouped(producer, records)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        unique_topic, other, auto_offset_reset="earliest", **kafka_settings.consumer_kwargs()
    )
    await consumer.start()
    got = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(got) < len(records) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(batch)
    finally:
        await consumer.stop()

    assert len(got) == len(records)
    mine = [r for r in got if r.topic == unique_topic]
    for r in mine:
        assert r.partition == partition_for(r.key, PARTITIONS), r.key
    for key in {r.key for r in mine}:
        ns = [
            int(dict(r.headers)["n"]) for r in sorted(mine, key=lambda r: r.offset) if r.key == key
        ]
        assert ns == sorted(ns), f"records of {key!r} out of order"
    assert any(r.value == big for r in mine)
    pinned = [r for r in got if r.key == b"pinned"]
    assert [(r.partition, r.value) for r in pinned] == [(3, b"to-3")]
    assert sum(1 for r in got if r.topic == other and r.key is None) == 12


async def produce_requests_for(
    kafka_settings: KafkaSettings, topic: str, record_limit: int | None
) -> int:
    """How many produce requests 1,000 records of 400 bytes for one partition take."""
    await ensure_topics(kafka_settings, [topic], partitions=1)
    records = [OutRecord(topic, f"saga-{n}".encode(), b"v" * 400, []) for n in range(1000)]
    producer = batching_producer(kafka_settings, record_limit=record_limit, linger_ms=1)
    await producer.start()
    requests = 0
    send = producer.client.send

    async def counting_send(node_id: int, request: object, **kwargs: object) -> object:
        nonlocal requests
        requests += type(request).__name__.startswith("ProduceRequest")
        return await send(node_id, request, **kwargs)

    producer.client.send = counting_send  # type: ignore[method-assign]
    try:
        futures = await send_grouped(producer, records)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return requests


async def test_a_coordinator_batch_for_one_partition_is_one_produce_request(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    """aiokafka sends one batch per partition in a request, one request at a time per
    broker: with its default 16 KiB batches, 1,000 replies' worth of commands for one
    topic went out as 25 requests one after the other (the coordinator's bottleneck)."""
    assert await produce_requests_for(kafka_settings, unique_topic, None) == 1


async def test_batches_stay_within_the_record_limit_of_a_smaller_cluster(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    # 400 KB in batches of at most 64 KiB: at least 7 of them, one request each
    assert await produce_requests_for(kafka_settings, unique_topic, 65_536) >= 7
