"""The end of a log, as recovery needs it, even where ListOffsets under-reports it."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from events.admin import ensure_topics
from events.end_offsets import true_end_offsets
from events.kafka_settings import KafkaSettings


async def test_end_offsets_count_every_record_of_the_last_batch(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_topics(kafka_settings, [unique_topic], partitions=2)
    producer = AIOKafkaProducer(**kafka_settings.aiokafka_kwargs(), linger_ms=50)
    await producer.start()
    try:
        for batch in (5, 8):  # two write batches on partition 0, nothing on partition 1
            await asyncio.gather(
                *[await producer.send(unique_topic, b"x", partition=0) for _ in range(batch)]
            )
    finally:
        await producer.stop()
    tps = [TopicPartition(unique_topic, 0), TopicPartition(unique_topic, 1)]
    consumer = AIOKafkaConsumer(**kafka_settings.consumer_kwargs())
    await consumer.start()
    try:
        reported = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()

    corrected = await true_end_offsets(kafka_settings.consumer_kwargs(), reported)

    assert corrected == {tps[0]: 13, tps[1]: 0}, f"ListOffsets said {reported}"
