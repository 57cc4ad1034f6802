"""Applies admission control (`sagas.admission`) to the coordinator's consumer.

The runtime half: it counts this replica's sagas in flight from each batch's
decisions (and from the table after a rebalance), holds the trigger records a
batch may not admit, pauses or resumes the trigger partitions as
`sagas.admission.gate` says, and while they are paused reads their log ends, so
that the starts waiting there are counted.

Held, not handed back: a start fetched past the room left stays in memory, in
offset order per partition, and the next batch with room decides it before
anything newer of its partition, without a fetch. Its partition stays paused
while it holds any (so what is held is at most one batch), and its offset is
not committed until it is decided, so a rebalance or a crash loses nothing: the
next owner reads it again from the committed offset. (Kafka Streams buffers
fetched records per partition the same way, pausing a partition whose buffer is
full.) This used to seek back to the first start not admitted, so those starts
were fetched again (78,958 of them for 90,960 offered, at 3x the peak on Apache
Kafka), and after each resume the replica waited for a fetch before it had a
saga to start. What aiokafka buffered past them is kept too: aiokafka drops a paused
partition's buffer when ``getmany`` is asked for that partition (and fetches it again
after the resume), so while partitions are paused the loop asks for the others only
(`fetch_from`). Before, at 3x the peak on Apache Kafka, the coordinator fetched some
10-12 KiB per saga, most of it starts it had fetched before; now 2.6-3.0 KiB.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from events.topics import Topics
from sagas import admission
from sagas.admission import AdmissionLimits, GateChange
from sagas.admission_metrics import AdmissionMetrics
from sagas.batch_values import DecisionSignal
from sagas.kafka.consumer_lag import LagRow, partition_lag, unread
from sagas.loader import DefinitionRegistry

log = logging.getLogger("sagas.admission")

#: seconds between reads of the paused start partitions' log ends (`refresh_log_ends`)
LOG_END_INTERVAL = 2.0
#: seconds one such read may take (aiokafka's ``end_offsets`` can wait indefinitely)
LOG_END_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Admitted:
    """The records of a fetch a batch may decide, and the offsets it then commits."""

    records: dict[TopicPartition, list[Any]]
    offsets: dict[TopicPartition, int]
    #: new sagas the batch may still start from ``saga.control`` (`admission.room_left`);
    #: None: no bound
    start_room: int | None = None


class AdmissionGate:
    def __init__(
        self, limits: AdmissionLimits, start_topics: frozenset[str], metrics: AdmissionMetrics
    ) -> None:
        self.limits = limits
        self.start_topics = start_topics
        self.metrics = metrics
        self.in_flight = 0
        self.paused = False
        #: starts fetched past the room left, by partition, in offset order: decided first
        #: when there is room (their offsets are not committed until then)
        self.held: dict[TopicPartition, list[Any]] = {}
        #: the start partitions this gate has paused in the consumer: all of them while
        #: ``paused``, else those with starts ``held``
        self.paused_partitions: set[TopicPartition] = set()
        #: log end of each paused start partition, as `refresh_log_ends` last read it
        self.log_ends: dict[TopicPartition, int] = {}
        #: the group's committed offsets of paused start partitions not committed here yet
        self.group_committed: dict[TopicPartition, int] = {}
        metrics.limit.set(limits.high)

    @classmethod
    def for_registry(
        cls,
        registry: DefinitionRegistry,
        engine: Topics,
        max_in_flight: int,
        metrics: AdmissionMetrics,
    ) -> AdmissionGate:
        """The gate of a replica running ``registry``'s sagas; says which starts it cannot
        hold back (a trigger topic that also carries replies is never paused)."""
        limits = AdmissionLimits.of(max_in_flight)
        shared = admission.shared_trigger_topics(registry, engine)
        if limits.bounded and shared:
            log.warning(
                "SAGAS_MAX_IN_FLIGHT=%d does not hold back starts on %s: %s also carry "
                "replies or observed events, which must keep flowing; give starts a topic "
                "of their own",
                limits.high,
                ", ".join(sorted(shared)),
                "it" if len(shared) == 1 else "they",
            )
        return cls(limits, admission.start_only_topics(registry, engine), metrics)

    def admit(self, fetched: dict[TopicPartition, list[Any]]) -> Admitted:
        """What a batch may decide of ``fetched`` and of the starts held before: held ones
        first, then what fits of a fetch under the bound; the rest of a trigger
        partition is held for a later batch (`held`)."""
        limits, in_flight = self.limits, self.in_flight
        if not limits.bounded:
            return Admitted(fetched, _ends(fetched))
        held = self.held
        fresh = [tp for tp in fetched if tp.topic in self.start_topics and fetched[tp]]
        if not fresh and (not held or in_flight >= limits.high):
            waiting = self.paused or bool(held)
            room = admission.room_left(limits, in_flight, 0, waiting)
            return Admitted(fetched, _ends(fetched), room)
        queues = dict(held)
        for tp in fresh:
            queues[tp] = queues[tp] + fetched[tp] if tp in queues else fetched[tp]
        kept = admission.admit(limits, in_flight, [len(rs) for rs in queues.values()])
        records = dict(fetched)
        self.held = {}
        deferred = 0
        for (tp, rs), n in zip(queues.items(), kept, strict=True):
            records[tp] = rs[:n]
            if n < len(rs):
                self.held[tp] = rest = rs[n:]
                deferred += min(len(rest), len(fetched.get(tp, ())))
        self.count_deferred(deferred)
        waiting = self.paused or bool(self.held)
        room = admission.room_left(limits, in_flight, sum(kept), waiting)
        return Admitted(records, _ends(records), room)

    @property
    def held_count(self) -> int:
        """Starts held: a batch decides these besides what it fetches."""
        return sum(len(rs) for rs in self.held.values())

    def may_admit_held(self) -> bool:
        """Are starts held that a batch could decide now, with nothing fetched?"""
        return bool(self.held) and self.in_flight < self.limits.high

    def fetch_from(self, consumer: Any) -> tuple[TopicPartition, ...]:
        """The partitions the batch loop's next ``getmany`` asks for: ``()`` (all of them)
        unless start partitions are paused, then every assigned partition but those.

        aiokafka drops what it had fetched of a paused partition once ``getmany`` is asked
        for it, and fetches it again after the resume: up to ``max_partition_fetch_bytes``
        per start partition at every resume, which at the bound is several times a second.
        Left out of ``getmany`` while paused, that buffer stays (aiokafka does not fetch a
        partition whose buffer is unread, so it is at most one fetch per partition), and a
        resumed partition's next starts come from it without a fetch. Nothing of it is
        decided or committed while paused: a rebalance or a crash reads it again from the
        committed offset.
        """
        if not self.paused_partitions:
            return ()
        try:
            return tuple(consumer.assignment() - self.paused_partitions)
        except Exception:  # noqa: BLE001 - between assignments: ask for all of them
            return ()

    def drop_held(self, partitions: Collection[TopicPartition]) -> None:
        """Forget the held starts of ``partitions`` (revoked: their next owner reads them
        again from the committed offset)."""
        for tp in partitions:
            self.held.pop(tp, None)
            self.paused_partitions.discard(tp)

    def count_deferred(self, n: int) -> None:
        """``n`` starts were not decided when read, at the bound: held for a later batch,
        or moved from ``saga.control`` to ``saga.starts``."""
        if n:
            self.metrics.deferred.inc(n)

    def check_start(self) -> str | None:
        """None if the HTTP API may publish a new start now, else why not
        (`sagas.admission.start_refusal`); each refusal is counted."""
        why = admission.start_refusal(self.limits, self.in_flight)
        if why is not None:
            self.metrics.api_refused.inc()
        return why

    def observe(self, decisions: Sequence[DecisionSignal]) -> None:
        self.in_flight = max(0, self.in_flight + admission.in_flight_change(decisions))
        self.metrics.in_flight.set(self.in_flight)

    def recount(self, values: Iterable[bytes]) -> None:
        """After a rebalance: the sagas in flight in the partitions now held."""
        self.in_flight = admission.in_flight_in(values)
        self.metrics.in_flight.set(self.in_flight)
        # a new assignment starts with no partition paused, from its committed offsets
        self.paused = False
        self.held, self.paused_partitions = {}, set()
        self.log_ends, self.group_committed = {}, {}
        self.metrics.paused.set(0)

    async def refresh_log_ends(
        self,
        consumer: Any,
        committed: Mapping[TopicPartition, int],
        timeout: float = LOG_END_TIMEOUT,
    ) -> None:
        """Read the log end of each start partition this gate paused (``ListOffsets``).

        aiokafka learns a partition's end only from its fetches, and a paused partition is
        not fetched: without this, the starts that arrive while the replica holds back would
        not show in ``saga_start_backlog`` (nor in the consumer lag), however long they wait.
        A partition this replica has not committed yet (``committed``: its own commits;
        paused right after an assignment) gets the group's committed offset read too, so
        its lag counts from there, not from the start of the log.
        Never raises: a failed read keeps the last values, and the next one tries again.
        """
        if not self.paused_partitions:
            self.log_ends, self.group_committed = {}, {}
            return
        try:
            tps = sorted(self.paused_partitions & consumer.assignment())
            if not tps:
                return
            ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
            read = dict(self.group_committed)
            for tp in tps:
                if tp not in committed and tp not in read:
                    offset = await asyncio.wait_for(consumer.committed(tp), timeout)
                    read[tp] = int(offset or 0)
            self.group_committed = read
            self.log_ends = {tp: int(end) for tp, end in ends.items()}
        except Exception as exc:  # noqa: BLE001 - a gauge's input: never worth the replica
            log.debug("could not read the log ends of the paused start partitions: %r", exc)

    def lag(
        self, consumer: Any, topics: Collection[str], committed: Mapping[TopicPartition, int]
    ) -> list[LagRow]:
        """`partition_lag` of ``topics`` with what this gate read of its paused partitions:
        their log ends, and the group's commits where ``committed`` (this replica's own)
        has none yet."""
        if self.group_committed:
            committed = {**self.group_committed, **committed}
        return partition_lag(consumer, topics, committed, self.log_ends)

    def starts_waiting(self, consumer: Any, partition: int) -> bool:
        """May starts wait unread on ``partition`` of a start topic held here?

        Paused or holding starts of it (`held`): yes (what arrived since the pause is not
        fetched, and its end is read only every `LOG_END_INTERVAL`). Else: records past
        the consumer's position (what it handed to the batch step) up to the end its
        fetches last saw (`sagas.kafka.consumer_lag.unread`).
        """
        if any(tp.partition == partition for tp in (*self.held, *self.paused_partitions)):
            return True
        try:
            mine = [
                tp
                for tp in consumer.assignment()
                if tp.topic in self.start_topics and tp.partition == partition
            ]
        except Exception:  # noqa: BLE001 - between assignments: nothing is held here
            return False
        if self.paused:
            return bool(mine)
        return any((unread(consumer, tp) or 0) > 0 for tp in mine)

    def apply(self, consumer: Any) -> None:
        """Pause or resume the trigger partitions this replica is assigned: all of them at
        the bound (until in flight falls to the low-water mark), and, below it, those
        with starts held until a batch has decided them."""
        change = admission.gate(self.limits, self.in_flight, self.paused)
        if not self.start_topics:
            return
        if change is GateChange.KEEP and (
            self.paused or self.held.keys() == self.paused_partitions
        ):
            return  # nothing changed (the usual batch: no set built)
        try:
            tps = {tp for tp in consumer.assignment() if tp.topic in self.start_topics}
        except Exception:  # noqa: BLE001 - between assignments: the next batch applies it
            return
        paused = self.paused if change is GateChange.KEEP else change is GateChange.PAUSE
        want = tps if paused else tps & self.held.keys()
        if stop := want - self.paused_partitions:
            consumer.pause(*stop)
        if go := (self.paused_partitions & tps) - want:
            consumer.resume(*go)
        self.paused_partitions = want
        if change is GateChange.PAUSE:
            self.paused = True
            self.metrics.pauses.inc()
            log.info(
                "%d sagas in flight (bound %d): new starts wait in Kafka on %s",
                self.in_flight,
                self.limits.high,
                ", ".join(sorted(self.start_topics)),
            )
        elif change is GateChange.RESUME:
            self.paused = False
            log.info("%d sagas in flight: admitting new starts again", self.in_flight)
        self.metrics.paused.set(1 if self.paused else 0)


def _ends(records: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
    return {tp: rs[-1].offset + 1 for tp, rs in records.items() if rs}
