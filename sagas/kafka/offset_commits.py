"""Batches on their way to Kafka, and the input offsets that become committable.

The coordinator decides a batch at once and persists it in the background
(commands, then states); a participant persists each batch before it takes the
next. Either way offsets are committed in order, and only for batches Kafka has
all of, without holding up the next fetch: as soon as a batch is durable, one
commit at a time, at most every ``commit_interval`` seconds under load; `drain`
commits everything in hand (before a rebalance, when idle, on stop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("sagas.kafka.offset_commits")

__all__ = ["OffsetCommits"]


@dataclass
class _InFlight:
    persisted: asyncio.Future[None]
    offsets: dict[TopicPartition, int]


class OffsetCommits:
    def __init__(self, *, depth: int, interval: float) -> None:
        self.depth = depth
        self.interval = interval
        self.consumer: Any = None
        #: input partition -> next offset committed (what is durable)
        self.committed: dict[TopicPartition, int] = {}
        self._inflight: list[_InFlight] = []
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._committed_at = 0.0

    async def add(
        self, persisted: asyncio.Future[None], offsets: dict[TopicPartition, int]
    ) -> None:
        """Track a batch being persisted; waits while more than ``depth`` are in hand."""
        self._inflight.append(_InFlight(persisted, offsets))
        persisted.add_done_callback(self._on_persisted)
        while len(self._inflight) > self.depth:
            await self._inflight[0].persisted
            self._settle_done()
        self._settle_done()
        self._commit_in_background()

    async def drain(self) -> None:
        """Wait for every batch in hand to be durable and commit its offsets."""
        while self._inflight:
            await self._inflight[0].persisted
            self._settle_done()
        if self._committing is not None:
            await self._committing
            self._committing = None
        if self._uncommitted:
            offsets, self._uncommitted = self._uncommitted, {}
            await self._commit(offsets)

    def commit_parked(self) -> None:
        """Commit in the background what ``commit_interval`` held back, once it has passed:
        for a caller with nothing new to add whose next idle poll may be far off."""
        self._commit_in_background()

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.committed.pop(tp, None)

    def _on_persisted(self, _future: asyncio.Future[None]) -> None:
        """A batch is durable: commit what now is, in order, without waiting for the next
        batch or idle poll (a failure is left for `add` or `drain` to raise)."""
        while self._inflight and _succeeded(self._inflight[0].persisted):
            self._uncommitted.update(self._inflight.pop(0).offsets)
        self._commit_in_background()

    def _settle_done(self) -> None:
        while self._inflight and self._inflight[0].persisted.done():
            batch = self._inflight.pop(0)
            batch.persisted.result()  # a batch that failed to persist ends the replica
            self._uncommitted.update(batch.offsets)

    def _commit_in_background(self) -> None:
        if not self._uncommitted or not (self._committing is None or self._committing.done()):
            return
        now = time.monotonic()
        if now - self._committed_at < self.interval:
            return  # an idle poll or a later batch commits it; a crash replays at most this
        self._committed_at = now
        offsets, self._uncommitted = self._uncommitted, {}
        self._committing = asyncio.create_task(self._commit(offsets))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # Lost the partitions meanwhile (paused past the session, group rebalanced):
            # their new owner replays these records; our states for them are dropped on
            # the revocation that follows and carry an older generation in the changelog.
            log.warning(
                "could not commit offsets %s (%r); the new owner replays them",
                ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items())),
                exc,
            )
            return
        self.committed.update(offsets)


def _succeeded(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
