"""Answers a participant holds back, and how far it may commit its inputs meanwhile.

A participant commits an input's offset only once the input's effect is in its changelog
and its answers are published: a crash before that redelivers the input, and the restart
answers it from the changelog without doing anything twice. An answer held back
(``answer_delay``) goes out after its batch, so the input's partition is committed no
further than that input until its answer has gone out. Without this, a SIGKILL during
the delay lost the answer for good: in a choreography no one asks again, and the saga's
deadline compensated work that had been done.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from events.dead_letters import describe
from sagas.participants.participant_io import Record, output_records
from sagas.participants.participant_store import Outgoing

log = logging.getLogger("sagas.participants.held_answers")


@dataclass(frozen=True)
class HeldAnswer:
    """The outputs of one input, held back (``answer_delay``), and where the input is."""

    outputs: tuple[Outgoing, ...]
    tp: TopicPartition
    offset: int

    @property
    def where(self) -> str:
        return f"{self.tp.topic}[{self.tp.partition}]@{self.offset}"


class CommitFloor:
    """Per input partition: what was handled, which inputs still wait for their answers,
    and the offsets not yet handed to a commit."""

    def __init__(self) -> None:
        #: input partition -> the offset after the last record handled
        self._handled: dict[TopicPartition, int] = {}
        #: input partition -> offsets of inputs whose answers are held back (a Counter:
        #: a redelivered input may be held again while its first hold is pending)
        self._held: dict[TopicPartition, Counter[int]] = {}
        #: input partition -> the offset last handed out by `due`
        self._given: dict[TopicPartition, int] = {}

    def handled(self, tp: TopicPartition, next_offset: int) -> None:
        """Every record of ``tp`` before ``next_offset`` has been handled and published,
        except those `hold` names."""
        self._handled[tp] = max(next_offset, self._handled.get(tp, 0))

    def hold(self, tp: TopicPartition, offset: int) -> None:
        """The answers of the input at ``offset`` go out later."""
        self._held.setdefault(tp, Counter())[offset] += 1

    def answered(self, tp: TopicPartition, offset: int) -> None:
        """The held answers of the input at ``offset`` went out (or gave up for good)."""
        held = self._held.get(tp)
        if held is None or held[offset] <= 0:
            return
        held[offset] -= 1
        if held[offset] == 0:
            del held[offset]
        if not held:
            del self._held[tp]

    def holding(self) -> int:
        """Inputs whose answers are still held back."""
        return sum(held.total() for held in self._held.values())

    def due(self) -> dict[TopicPartition, int]:
        """Offsets to commit that were not handed out before: per partition the handled
        position, or the first input still waiting for its answers if that comes first."""
        offsets = {}
        for tp, handled in self._handled.items():
            held = self._held.get(tp)
            floor = min(handled, min(held)) if held else handled
            if floor > self._given.get(tp, -1):
                offsets[tp] = self._given[tp] = floor
        return offsets


#: sends records and waits for Kafka's acknowledgement
Send = Callable[[Sequence[Record]], Awaitable[None]]

#: seconds before a late answer that could not be sent is tried again, doubling up to the max
RETRY_FIRST, RETRY_MAX = 0.5, 30.0


class HeldAnswers:
    """Answers held back and sent after their delay, and the commit floor they impose:
    an input is committable once its answers went out.

    An answer is held (`hold`) while its batch is processed; its delay starts once that
    batch is durable (`release`: in exactly_once, once its transaction committed), so an
    answer never goes out ahead of its effect. One that cannot be sent is tried again
    with backoff; `flush` sends what is left at once when the process stops."""

    def __init__(self, name: str, send: Send) -> None:
        self.name = name
        self._send = send
        self.floor = CommitFloor()
        #: held in the batch in hand, waiting for it to be durable
        self._unreleased: list[tuple[float, HeldAnswer]] = []
        self._pending: dict[asyncio.Task[None], HeldAnswer] = {}
        #: tasks inside a send: `flush` lets them finish rather than send their answer twice
        self._sending: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def waiting(self) -> list[HeldAnswer]:
        """Answers held back and not yet sent."""
        return [answer for _, answer in self._unreleased] + list(self._pending.values())

    def hold(self, delay: float, answer: HeldAnswer) -> None:
        """Hold ``answer`` back ``delay`` seconds from when its batch is durable."""
        self.floor.hold(answer.tp, answer.offset)
        self._unreleased.append((delay, answer))

    def release(self) -> None:
        """The batch in hand is durable: the delays of its held answers start."""
        for delay, answer in self._unreleased:
            self._pending[asyncio.create_task(self._send_later(delay, answer))] = answer
        self._unreleased.clear()

    async def _send_later(self, delay: float, answer: HeldAnswer) -> None:
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(delay)
        backoff = RETRY_FIRST
        while True:
            self._sending.add(task)
            try:
                await self._send(output_records(answer.outputs))
                break
            except Exception as exc:  # noqa: BLE001 - Kafka's to recover; retried below
                if self._closing:
                    return  # `flush` sends it
                log.warning(
                    "%s: a late answer to %s could not be sent (%s); trying again in %gs, "
                    "its input stays uncommitted meanwhile",
                    self.name, answer.where, describe(exc), backoff,
                )  # fmt: skip
            finally:
                self._sending.discard(task)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX)
        self.floor.answered(answer.tp, answer.offset)
        self._pending.pop(task, None)

    async def flush(self) -> bool:
        """On stop: send at once the answers whose delay runs (one inside a send finishes
        first); False if they could not be sent. Answers of a batch that never became
        durable are dropped. Inputs not answered stay uncommitted: a restart answers them."""
        self._closing = True
        self._unreleased.clear()
        tasks = list(self._pending)
        for task in tasks:
            if task not in self._sending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held, self._pending = list(self._pending.values()), {}
        if not held:
            return True
        try:
            await self._send(output_records([out for answer in held for out in answer.outputs]))
        except Exception:
            log.exception(
                "%s: %d held-back answers could not be sent; their inputs stay uncommitted, "
                "so a restart answers them", self.name, len(held),
            )  # fmt: skip
            return False
        for answer in held:
            self.floor.answered(answer.tp, answer.offset)
        return True
