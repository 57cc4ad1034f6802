"""Exactly-once persistence: one Kafka transaction per input partition and batch.

Used in ``SAGAS_PROCESSING_GUARANTEE=exactly_once`` (`sagas.kafka.guarantee`) in
place of "send, wait, then commit offsets": what a batch decided for input
partition *n* — commands, lifecycle events, dead letters, changelog records —
and the offsets it consumed from partition *n* (``send_offsets_to_transaction``)
are committed together or not at all. Consumers read ``read_committed``, so an
aborted transaction's records are never seen.

Transactional ids are per input partition, ``<group>-eos-<n>``, not per
process: aiokafka's TxnOffsetCommit (v0) carries no consumer-group generation
(no KIP-447), so the only broker-enforced fence is the transactional id
itself. The replica that takes partition *n* over initialises a producer
with the same id; Kafka bumps the id's epoch and aborts the transaction the
previous owner had open. If that owner was a zombie (paused past its
session), its next send or commit fails with ``ProducerFenced`` and nothing
it wrote since is visible; it raises `ReplicaFenced` and exits (crash-only).

Each partition's transactions run one after another (a producer has one
transaction open at a time), and the batches queued meanwhile share the next one
(group commit); partitions run side by side. The pure batch step
knows nothing of this: the coordinator hands over the records it would have
sent and the offsets it would have committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from events.partitioning import partition_for
from events.records import OutRecord
from sagas.kafka.authorization_failure import is_authorization_failure
from sagas.kafka.producer_batches import send_grouped
from sagas.kafka.transaction_failures import ReplicaFenced, in_doubt, is_fenced

log = logging.getLogger("sagas.kafka.transactions")

__all__ = [
    "PartitionTransactions",
    "TransactionalCommits",
    "WriterTransaction",
    "split_by_partition",
    "transactional_id",
]

#: header of a dead letter naming the input partition its record came from
_DLQ_PARTITION = "x-dlq-partition"


def transactional_id(group: str, partition: int) -> str:
    """The transactional id of input partition ``partition`` in consumer group ``group``."""
    return f"{group}-eos-{partition}"


def split_by_partition(
    records: Iterable[OutRecord], partitions: int, owned: Sequence[int]
) -> dict[int, list[OutRecord]]:
    """Group a batch's records by the input partition whose transaction carries them.

    A keyed record belongs to its key's (saga id's) partition; a dead letter without a
    key to the partition its input came from; anything else to the first of ``owned``.
    Order within a partition is kept.
    """
    mine = set(owned)
    fallback = owned[0]
    out: dict[int, list[OutRecord]] = {}
    for record in records:
        n = partition_for(record.key, partitions) if record.key is not None else None
        if n is None or n not in mine:
            n = _dead_letter_partition(record.headers)
            if n is None or n not in mine:
                n = fallback
        out.setdefault(n, []).append(record)
    return out


def _dead_letter_partition(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    for name, value in headers or ():
        if name == _DLQ_PARTITION:
            with contextlib.suppress(ValueError):
                return int(value)
    return None


@dataclass
class _Queued:
    """One batch's share of a partition's next transaction."""

    records: list[OutRecord]
    offsets: dict[TopicPartition, int]
    done: asyncio.Future[None]


@dataclass
class _Partition:
    producer: Any
    #: batches waiting for the transaction after the one running (group commit)
    queue: list[_Queued] = field(default_factory=list)
    #: the task running this partition's transactions while its queue is not empty
    worker: asyncio.Task[None] | None = None
    #: once a transaction failed, every later batch fails with the same error
    failed: BaseException | None = None


@dataclass
class PartitionTransactions:
    """The transactional producers of the input partitions one process owns.

    ``make_producer(transactional_id)`` builds an unstarted producer (the caller's
    connection, batch size and acks settings); ``group`` is the consumer group the
    offsets are committed for; ``partitions`` the input partition count.

    Group commit: while a partition's transaction runs, the batches queued for that
    partition wait, and the next transaction takes all of them at once (records in batch
    order, the newest offsets). So the number of transactions follows the broker's commit
    latency, not the number of batches: a batch of a few records does not cost a
    transaction per partition it touches.
    """

    make_producer: Callable[[str], AIOKafkaProducer]
    group: str
    partitions: int
    _owned: dict[int, _Partition] = field(default_factory=dict)

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._owned)

    async def own(self, partitions: Iterable[int]) -> None:
        """Hold producers for exactly ``partitions``: close the others, start the new ones.

        Starting a producer initialises its transactional id, which fences the previous
        holder: its open transaction is aborted (or, if it was committing, completed)
        before this returns.
        """
        wanted = set(partitions)
        for n in sorted(set(self._owned) - wanted):
            await self._close(self._owned.pop(n))
        for n in sorted(wanted - set(self._owned)):
            producer = self.make_producer(transactional_id(self.group, n))
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._owned[n] = _Partition(producer)

    def persist(
        self, records: Sequence[OutRecord], offsets: dict[TopicPartition, int]
    ) -> asyncio.Future[None]:
        """Queue one batch on the transactions of the input partitions it touches;
        resolves when all committed (raises `ReplicaFenced` if another process took one
        of them over)."""
        if not self._owned:
            raise ReplicaFenced("no input partitions are held: nothing may be written")
        owned = sorted(self._owned)
        grouped = split_by_partition(records, self.partitions, owned)
        per_offsets: dict[int, dict[TopicPartition, int]] = {}
        for tp, offset in offsets.items():
            per_offsets.setdefault(tp.partition, {})[tp] = offset
        loop = asyncio.get_running_loop()
        shares = []
        for n in sorted(set(grouped) | set(per_offsets)):
            held = self._owned.get(n)
            if held is None:
                raise ReplicaFenced(f"input partition {n} is not held here; its batch is dropped")
            share = _Queued(grouped.get(n, []), per_offsets.get(n, {}), loop.create_future())
            shares.append(share.done)
            if held.failed is not None:
                share.done.set_exception(held.failed)
                continue
            held.queue.append(share)
            if held.worker is None or held.worker.done():
                held.worker = asyncio.create_task(self._work(n, held))
        return asyncio.ensure_future(_all(shares))

    async def _work(self, n: int, held: _Partition) -> None:
        """Commit what is queued for partition ``n``, one transaction at a time."""
        while held.queue:
            taken, held.queue = held.queue, []
            records = [record for share in taken for record in share.records]
            offsets: dict[TopicPartition, int] = {}
            for share in taken:
                offsets.update(share.offsets)
            try:
                await self._transaction(n, held.producer, records, offsets)
            except BaseException as exc:  # noqa: BLE001 - handed to every batch waiting
                held.failed = exc
                for share in [*taken, *held.queue]:
                    if not share.done.done():
                        share.done.set_exception(exc)
                held.queue = []
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            for share in taken:
                if not share.done.done():
                    share.done.set_result(None)

    async def _transaction(
        self, n: int, producer: Any, records: list[OutRecord], offsets: dict[TopicPartition, int]
    ) -> None:
        acks: list[asyncio.Future[Any]] = []
        try:
            await producer.begin_transaction()
            acks = await send_grouped(producer, records)
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self.group)
            await producer.commit_transaction()
            if acks:
                await asyncio.gather(*acks)
        except Exception as exc:
            _retrieve(acks)  # their failure is this one; not "never retrieved" on the log
            if is_authorization_failure(exc):
                raise  # the operator's to fix, said in one line by the caller
            if not is_fenced(exc, producer):
                raise in_doubt(
                    exc, transactional_id(self.group, n), f"input partition {n}"
                ) from exc
            raise ReplicaFenced(
                f"transactional id {transactional_id(self.group, n)!r} (input partition {n}) "
                "is held by another replica now (this one lost the partition, e.g. paused past "
                "its session): Kafka aborted this replica's open transaction, none of its "
                "writes since are visible"
            ) from None

    async def drain(self) -> None:
        """Wait until every queued batch is committed (raises what the first failure raised)."""
        waiting = [
            held.worker
            for held in self._owned.values()
            if held.worker is not None and not held.worker.done()
        ]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        for held in self._owned.values():
            if held.failed is not None:
                raise held.failed

    async def stop(self) -> None:
        """Close every producer (an open transaction is aborted by the broker's timeout or
        by the next holder of its id)."""
        for n in sorted(self._owned):
            await self._close(self._owned.pop(n))

    async def _close(self, held: _Partition) -> None:
        if held.worker is not None and not held.worker.done():
            await asyncio.gather(held.worker, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(held.producer.stop(), 10)


def _retrieve(futures: Iterable[asyncio.Future[Any]]) -> None:
    for future in futures:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _all(steps: Sequence[asyncio.Future[None]]) -> None:
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@dataclass
class _InHand:
    done: asyncio.Future[None]
    offsets: dict[TopicPartition, int]


class TransactionalCommits:
    """`sagas.kafka.offset_commits.OffsetCommits` for batches whose offsets ride in their
    transaction: bounds the batches in hand to ``depth`` and records what committed."""

    def __init__(self, *, depth: int) -> None:
        self.depth = depth
        #: input partition -> next offset committed (by a committed transaction)
        self.committed: dict[TopicPartition, int] = {}
        self._in_hand: list[_InHand] = []

    async def add(self, done: asyncio.Future[None], offsets: dict[TopicPartition, int]) -> None:
        self._in_hand.append(_InHand(done, offsets))
        while len(self._in_hand) > self.depth:
            await self._in_hand[0].done
            self._settle()
        self._settle()

    async def drain(self) -> None:
        while self._in_hand:
            await self._in_hand[0].done
            self._settle()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.committed.pop(tp, None)

    def _settle(self) -> None:
        while self._in_hand and self._in_hand[0].done.done():
            batch = self._in_hand.pop(0)
            batch.done.result()  # a failed transaction ends the process
            self.committed.update(batch.offsets)


class WriterTransaction:
    """The transaction of a single-writer process (a participant, the bridge): one
    transactional producer, id ``<group>-eos``; a batch's sends begin it (`begin`, lazily,
    so that work before the first send -- an HTTP call -- is not inside it) and `commit`
    adds the consumed offsets and commits. A second process with the same id fences this
    one: `ReplicaFenced`."""

    def __init__(self, producer: Any, group: str) -> None:
        self.producer = producer
        self.group = group
        self._open = False

    @property
    def id(self) -> str:
        return f"{self.group}-eos"

    @property
    def is_open(self) -> bool:
        """A batch's transaction has begun and not been committed."""
        return self._open

    async def begin(self) -> None:
        if not self._open:
            await self._fenced_as(self.producer.begin_transaction())
            self._open = True

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.begin()
        self._open = False
        if offsets:  # a batch whose every input waits for a held-back answer commits none
            await self._fenced_as(self.producer.send_offsets_to_transaction(offsets, self.group))
        await self._fenced_as(self.producer.commit_transaction())

    async def _fenced_as(self, step: Any) -> None:
        try:
            await step
        except Exception as exc:
            if is_authorization_failure(exc):
                raise  # the operator's to fix, said in one line by the caller
            if not is_fenced(exc, self.producer):
                raise in_doubt(exc, self.id, f"consumer group {self.group!r}") from exc
            raise ReplicaFenced(
                f"transactional id {self.id!r} is held by another process now (two processes "
                f"run for consumer group {self.group!r}; run one): Kafka aborted this one's "
                "open transaction, none of its writes since are visible"
            ) from None
