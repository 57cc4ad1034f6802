"""Rebuilding the coordinator's table from its changelog, with a paused replica's late
writes fenced off by their consumer-group generation."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from events.partitioning import partition_for
from sagas.kafka.admin import ensure_compacted_topic
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.saga_table import GENERATION_HEADER, SagaTable

PARTITIONS = 4


async def write(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes | None, int | None]]
) -> None:
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs())
    await producer.start()
    try:
        for key, value, generation in records:
            headers = [] if generation is None else [(GENERATION_HEADER, str(generation).encode())]
            partition = partition_for(key, PARTITIONS)
            await (await producer.send(topic, value, key=key, partition=partition, headers=headers))
    finally:
        await producer.stop()


async def test_recovery_keeps_the_newest_generation_and_names_what_to_log_again(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_compacted_topic(kafka_settings, unique_topic, partitions=PARTITIONS)
    await write(
        kafka_settings,
        unique_topic,
        [
            (b"saga-a", b"a1", 3),
            (b"saga-a", b"a2", 4),  # the new owner, after a rebalance
            (b"saga-a", b"a-stale", 3),  # the old owner woke up and wrote late
            (b"saga-b", b"b1", 2),
            (b"saga-b", None, 2),  # purged
            (b"saga-c", b"c1", None),  # no header: generation 0
            (b"saga-d", b"d1", 5),
            (b"saga-d", b"d-stale", 4),
            (b"saga-d", b"d2", 6),  # the owner wrote again after the stale one: nothing to redo
        ],
    )
    table = SagaTable(kafka_settings, unique_topic, PARTITIONS)
    seen: list[int] = []

    found = await table.recover(range(PARTITIONS), progress=seen.append)

    assert table.data == {b"saga-a": b"a2", b"saga-c": b"c1", b"saga-d": b"d2"}
    assert found.stale == 2
    assert found.relog == {b"saga-a"}
    assert found.records == 9 and seen[-1] == 9
    assert found.keys == {b"saga-a", b"saga-b", b"saga-c", b"saga-d"}


async def test_recovering_some_partitions_reads_only_those_and_drop_forgets_them(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    await ensure_compacted_topic(kafka_settings, unique_topic, partitions=PARTITIONS)
    keys = [f"saga-{n}".encode() for n in range(40)]
    await write(kafka_settings, unique_topic, [(k, b"state", 1) for k in keys])
    table = SagaTable(kafka_settings, unique_topic, PARTITIONS)

    await table.recover([0, 1])

    mine = {k for k in keys if partition_for(k, PARTITIONS) in (0, 1)}
    assert set(table.data) == mine and 0 < len(mine) < len(keys)
    dropped = table.drop([1])
    assert set(table.data) == {k for k in mine if partition_for(k, PARTITIONS) == 0}
    assert dropped == len(mine) - len(table.data)
