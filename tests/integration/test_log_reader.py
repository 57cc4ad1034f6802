"""Reading partitions to their end, as recovery needs it, even where ListOffsets under-reports."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer, TopicPartition

from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.log_reader import read_to_end


async def test_reads_every_record_of_the_last_write_batch(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [unique_topic], partitions=3)
    producer = AIOKafkaProducer(**kafka_settings.aiokafka_kwargs(), linger_ms=50)
    await producer.start()
    try:
        # Two write batches on partition 0 (Tansu reports an end of 6 for these), one
        # record on partition 2, nothing on partition 1.
        for size in (5, 8):
            await asyncio.gather(
                *[
                    await producer.send(unique_topic, str(n).encode(), key=b"k", partition=0)
                    for n in range(size)
                ]
            )
        await (await producer.send(unique_topic, b"last", key=b"k", partition=2))
    finally:
        await producer.stop()
    tps = [TopicPartition(unique_topic, n) for n in range(3)]

    got: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    async for batch in read_to_end(kafka_settings, tps, max_records=4):
        for record in batch:
            got[record.partition].append(record.value)

    assert got[0] == [str(n).encode() for n in range(5)] + [str(n).encode() for n in range(8)]
    assert got[1] == []
    assert got[2] == [b"last"]


async def test_reading_nothing_yields_nothing(kafka_settings: KafkaSettings) -> None:
    batches = [batch async for batch in read_to_end(kafka_settings, [])]
    assert batches == []
