"""A command through a real broker: encoded, produced, consumed in a group, committed, resumed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from events.codec import decode, encode
from events.envelope import CloudEvent, derived_id, new_event
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings

pytestmark = pytest.mark.integration

RECEIVE_TIMEOUT = 30.0


def reserve_command(saga_id: str, attempt: int) -> CloudEvent:
    return new_event(
        "inventory.reserve",
        source="sagas/coordinator",
        sagaid=saga_id,
        id=derived_id(saga_id, "reserve", "command", attempt),
        data={"order_id": "o-1", "items": [{"sku": "A-1", "qty": 2}], "attempt": attempt},
    )


async def publish(settings: KafkaSettings, topic: str, event: CloudEvent) -> None:
    value, headers = encode(event)
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=event.sagaid.encode(), headers=headers)
    finally:
        await producer.stop()


@asynccontextmanager
async def consumer_in(
    settings: KafkaSettings, topic: str, group: str, timing: dict[str, int]
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **timing,
        **settings.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def next_event(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, CloudEvent]:
    record = await asyncio.wait_for(consumer.getone(), RECEIVE_TIMEOUT)
    event = decode(
        record.value,
        record.headers,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )
    return record, event


async def test_command_roundtrip_commit_and_resume(
    kafka_settings: KafkaSettings,
    topic_factory: Callable[..., str],
    consumer_group_timing: dict[str, int],
) -> None:
    topic = topic_factory("inventory.commands")
    group = topic_factory("participant")
    await ensure_topics(kafka_settings, [topic])
    first, second = reserve_command("saga-42", 1), reserve_command("saga-42", 2)

    await publish(kafka_settings, topic, first)
    async with consumer_in(kafka_settings, topic, group, consumer_group_timing) as consumer:
        record, received = await next_event(consumer)
        assert received == first
        assert record.key == b"saga-42"
        await consumer.commit()

    # A new member of the same group resumes after the committed offset: it
    # sees the second command only, never the first again.
    await publish(kafka_settings, topic, second)
    async with consumer_in(kafka_settings, topic, group, consumer_group_timing) as consumer:
        resumed_record, resumed = await next_event(consumer)
        assert resumed == second
        assert (resumed_record.partition, resumed_record.offset) == (
            record.partition,
            record.offset + 1,
        )

    # A fresh group reads the topic from the beginning, in order.
    async with consumer_in(
        kafka_settings, topic, topic_factory("auditor"), consumer_group_timing
    ) as consumer:
        replay = [(await next_event(consumer))[1] for _ in range(2)]
    assert replay == [first, second]
