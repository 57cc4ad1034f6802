"""Persisting what a batch decided: its records, then its saga states, in batch order.

Moved out of `sagas.coordinator` unchanged. Batches are persisted concurrently,
but each enqueues its records only after the batch before it did, and its
states only after that batch's states: the changelog keeps every saga's states
in order. Within a batch, commands and lifecycle events are durable before the
states that say they went out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.producer_batches import send_grouped
from sagas.metrics import CoordinatorMetrics
from sagas.saga_table import GENERATION_HEADER


@dataclass
class _Turn:
    """Set once a batch has enqueued its outgoing records, and then its states."""

    sent: asyncio.Future[None]
    logged: asyncio.Future[None]


class Persister:
    """One replica's writer: the producer (set once started), the table's changelog
    ``topic`` with its ``partitions``, and the consumer-group ``generation`` to stamp."""

    def __init__(
        self,
        metrics: CoordinatorMetrics,
        topic: str,
        partitions: int,
        generation: Callable[[], int],
    ) -> None:
        self.metrics = metrics
        self.topic = topic
        self.partitions = partitions
        self.generation = generation
        self.producer: AIOKafkaProducer | None = None
        self._last_turn: _Turn | None = None

    def persist(
        self, outgoing: Sequence[OutRecord], writes: dict[bytes, bytes | None]
    ) -> asyncio.Future[None]:
        """Start persisting one batch; resolves when all of it is durable."""
        loop = asyncio.get_running_loop()
        turn = _Turn(loop.create_future(), loop.create_future())
        previous, self._last_turn = self._last_turn, turn
        return asyncio.ensure_future(self._persist(outgoing, writes, previous, turn))

    async def _persist(
        self,
        outgoing: Sequence[OutRecord],
        writes: dict[bytes, bytes | None],
        previous: _Turn | None,
        turn: _Turn,
    ) -> None:
        if previous is not None:
            await previous.sent
        acks = await self.send_all(outgoing)
        turn.sent.set_result(None)
        await asyncio.gather(*acks)
        # Commands before states: a state that says a command went out must not be
        # durable before the command is (a replay would then not send it again).
        if previous is not None:
            await previous.logged
        acks = await self.enqueue_states(writes)
        turn.logged.set_result(None)
        await asyncio.gather(*acks)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one record on the producer; the returned future resolves when Kafka has it."""
        assert self.producer is not None, "the coordinator is not started"
        self.metrics.child(self.metrics.messages, topic, "out").inc()
        return await self.producer.send(topic, value, key=key, partition=partition, headers=headers)

    async def enqueue_states(self, writes: dict[bytes, bytes | None]) -> list[Any]:
        """Queue saga states on the table's changelog, each in its saga's partition."""
        return await self.send_all(self.state_records(writes))

    def state_records(self, writes: dict[bytes, bytes | None]) -> list[OutRecord]:
        """The changelog records of saga states, stamped with this replica's generation."""
        headers = [(GENERATION_HEADER, str(self.generation()).encode())]
        topic, partitions = self.topic, self.partitions
        return [
            OutRecord(topic, key, raw, headers, partition_for(key, partitions))
            for key, raw in writes.items()
        ]

    def batch_records(
        self, outgoing: Sequence[OutRecord], writes: dict[bytes, bytes | None]
    ) -> list[OutRecord]:
        """Everything a batch writes, counted, for one transaction (exactly_once): its
        commands, lifecycle events and dead letters, then its states."""
        records = [*outgoing, *self.state_records(writes)]
        for topic, n in Counter(record.topic for record in records).items():
            self.metrics.child(self.metrics.messages, topic, "out").inc(n)
        return records

    async def send_all(self, records: Sequence[OutRecord]) -> list[Any]:
        """Queue records grouped per partition (`sagas.kafka.producer_batches`); one future each batch."""
        assert self.producer is not None, "the coordinator is not started"
        per_topic = Counter(record.topic for record in records)
        for topic, n in per_topic.items():
            self.metrics.child(self.metrics.messages, topic, "out").inc(n)
        return await send_grouped(self.producer, records)
