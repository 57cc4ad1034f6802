"""Topic administration on a real broker: creation is idempotent, mismatches are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from events.errors import TopicMissingError, TopicPartitionMismatchError
from sagas.kafka.admin import admin_client, check_copartitioned, ensure_topics, partition_counts
from sagas.kafka.kafka_settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_ensure_topics_is_idempotent(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    commands, replies = topic_factory("commands"), topic_factory("replies")

    created = await ensure_topics(kafka_settings, [commands, replies], partitions=3)
    again = await ensure_topics(kafka_settings, [commands, replies], partitions=3)
    # Two creators racing for the same topics both succeed.
    raced = await asyncio.gather(
        ensure_topics(kafka_settings, [commands, replies], partitions=3),
        ensure_topics(kafka_settings, [commands, replies], partitions=3),
    )

    expected = {commands: 3, replies: 3}
    assert created == again == raced[0] == raced[1] == expected
    assert await partition_counts(kafka_settings, [commands, replies]) == expected
    assert await check_copartitioned(kafka_settings, [commands, replies]) == 3


async def test_ensure_topics_uses_the_configured_partition_count(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 5})
    assert await ensure_topics(settings, [unique_topic]) == {unique_topic: 5}


async def test_copartitioning_check_names_both_topics(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    narrow, wide = topic_factory("narrow"), topic_factory("wide")
    await ensure_topics(kafka_settings, [narrow], partitions=4)
    await ensure_topics(kafka_settings, [wide], partitions=8)

    with pytest.raises(TopicPartitionMismatchError) as caught:
        await check_copartitioned(kafka_settings, [narrow, wide])

    message = str(caught.value)
    assert f"{narrow}=4" in message
    assert f"{wide}=8" in message
    assert caught.value.partitions == {narrow: 4, wide: 8}


async def test_a_missing_topic_is_reported_and_not_created(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    present, absent = topic_factory("present"), topic_factory("absent")
    await ensure_topics(kafka_settings, [present])

    with pytest.raises(TopicMissingError) as caught:
        await check_copartitioned(kafka_settings, [present, absent])

    assert caught.value.topics == (absent,)
    assert absent in str(caught.value)
    # Asking must not auto-create it with the broker's default partition count.
    async with admin_client(kafka_settings) as admin:
        assert absent not in await admin.list_topics()
