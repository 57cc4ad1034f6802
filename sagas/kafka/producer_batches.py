"""Queue many records on an aiokafka producer as one batch per partition.

``producer.send()`` costs a coroutine, a future and an accumulator lookup per
record; a coordinator batch sends thousands. Here records are grouped per
(topic, partition) into producer batches in their order, and each batch is
queued with one ``send_batch`` (one future). Kafka's order per partition is
kept: the batches of a partition go out in the order their first record came,
and a record that is sent on its own (no key, or large) first flushes what its
partition has gathered.

Records without a partition go where Kafka's default partitioner would put
them (murmur2 of the key, `events.partitioning`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = ["BATCH_BYTES", "LINGER_MS", "SINGLE_SEND_BYTES", "batching_producer", "send_grouped"]

#: Values above this go through ``producer.send()``, which checks the request size limit.
SINGLE_SEND_BYTES = 256 * 1024

#: ``max_batch_size`` of the producers that send through here (aiokafka's default is
#: 16 KiB). aiokafka sends one batch per partition in a request and keeps one request
#: in flight per broker, so a coordinator batch of 300 KB for one partition went out as
#: 20 produce requests one after the other (and as 20 record batches in the log). Half
#: the broker's default record-batch limit (``message.max.bytes``, 1 MiB).
BATCH_BYTES = 512 * 1024

#: ``linger_ms`` of those producers. `send_grouped` queues whole record batches, and a
#: queued batch takes no more records (the next one for its partition waits until it is
#: sent), so lingering could only delay it: 1-2 ms on every hop of a saga. The batches
#: of one `send_grouped` call still go out in one request, since the sender task runs
#: only once the caller yields.
LINGER_MS = 0


def batching_producer(
    kafka: KafkaSettings, *, record_limit: int | None = None, **options: Any
) -> AIOKafkaProducer:
    """A producer for `send_grouped`: record batches of up to `BATCH_BYTES`, no linger.

    ``record_limit`` is the largest record the broker is known to take (a coordinator's
    ``SAGAS_MAX_RECORD_BYTES``): batches stay within it too, so a cluster configured below
    Kafka's default 1 MiB does not refuse every batch.
    """
    size = BATCH_BYTES if record_limit is None else min(BATCH_BYTES, record_limit)
    options.setdefault("linger_ms", LINGER_MS)
    return AIOKafkaProducer(**{**kafka.producer_kwargs(), **options}, max_batch_size=size)


async def send_grouped(producer: Any, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
    """Queue ``records`` in order; the futures resolve when Kafka has every record."""
    futures: list[asyncio.Future[Any]] = []
    builders: dict[tuple[str, int], Any] = {}
    counts: dict[str, int] = {}

    async def flush(tp: tuple[str, int]) -> None:
        builder = builders.pop(tp, None)
        if builder is not None:
            futures.append(await producer.send_batch(builder, tp[0], partition=tp[1]))

    for record in records:
        topic, key, value = record.topic, record.key, record.value
        headers, partition = record.headers, record.partition
        if key is None or (value is not None and len(value) > SINGLE_SEND_BYTES):
            if partition is not None:
                await flush((topic, partition))
            elif key is not None:
                await flush((topic, partition_for(key, await _partitions(producer, counts, topic))))
            futures.append(
                await producer.send(topic, value, key=key, partition=partition, headers=headers)
            )
            continue
        if partition is None:
            partition = partition_for(key, await _partitions(producer, counts, topic))
        tp = (topic, partition)
        builder = builders.get(tp)
        if builder is None:
            builder = builders[tp] = producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            await flush(tp)  # full: queue it, start the next one
            builder = builders[tp] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                # aiokafka's builders take any first record; never drop one if that changes
                del builders[tp]
                futures.append(
                    await producer.send(topic, value, key=key, partition=partition, headers=headers)
                )
    for tp in list(builders):
        await flush(tp)
    return futures


async def _partitions(producer: Any, counts: dict[str, int], topic: str) -> int:
    count = counts.get(topic)
    if count is None:
        await producer.client._wait_on_metadata(topic)
        count = counts[topic] = len(producer.client.cluster.partitions_for_topic(topic))
    return count
