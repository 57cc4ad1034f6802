"""Applies admission control (`sagas.admission`) to the coordinator's consumer.

The runtime half: it counts this replica's sagas in flight from each batch's
decisions (and from the table after a rebalance), hands back to Kafka the
trigger records a batch may not admit (a seek to the first of them), pauses or
resumes the trigger partitions as `sagas.admission.gate` says, and while they are
paused reads their log ends, so that the starts waiting there are counted.
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

    def admit(self, consumer: Any, fetched: dict[TopicPartition, list[Any]]) -> Admitted:
        """Keep what fits under the bound; fetch the rest of a trigger partition again."""
        limits, in_flight = self.limits, self.in_flight
        if not limits.bounded:
            return Admitted(fetched, _ends(fetched))
        starts = [tp for tp in fetched if tp.topic in self.start_topics and fetched[tp]]
        if not starts:
            room = admission.room_left(limits, in_flight, 0, self.paused)
            return Admitted(fetched, _ends(fetched), room)
        kept = admission.admit(limits, in_flight, [len(fetched[tp]) for tp in starts])
        records = dict(fetched)
        deferred = 0
        for tp, n in zip(starts, kept, strict=True):
            rs = fetched[tp]
            if n == len(rs):
                continue
            consumer.seek(tp, rs[n].offset)
            records[tp] = rs[:n]
            deferred += len(rs) - n
        self.count_deferred(deferred)
        room = admission.room_left(limits, in_flight, sum(kept), self.paused)
        return Admitted(records, _ends(records), room)

    def count_deferred(self, n: int) -> None:
        """``n`` starts were handed back to Kafka at the bound (fetched again later, or
        moved from ``saga.control`` to ``saga.starts``)."""
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
        # a new assignment starts with no partition paused
        self.paused = False
        self.log_ends, self.group_committed = {}, {}
        self.metrics.paused.set(0)

    async def refresh_log_ends(
        self,
        consumer: Any,
        committed: Mapping[TopicPartition, int],
        timeout: float = LOG_END_TIMEOUT,
    ) -> None:
        """While paused, read the log end of each paused start partition (``ListOffsets``).

        aiokafka learns a partition's end only from its fetches, and a paused partition is
        not fetched: without this, the starts that arrive while the replica holds back would
        not show in ``saga_start_backlog`` (nor in the consumer lag), however long they wait.
        A partition this replica has not committed yet (``committed``: its own commits;
        paused right after an assignment) gets the group's committed offset read too, so
        its lag counts from there, not from the start of the log.
        Never raises: a failed read keeps the last values, and the next one tries again.
        """
        if not self.paused:
            self.log_ends, self.group_committed = {}, {}
            return
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self.start_topics]
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

        Paused: yes (what arrived since the pause is not fetched, and its end is read only
        every `LOG_END_INTERVAL`). Else: records past the consumer's position (what it
        handed to the batch step, minus what `admit` sent back) up to the end its fetches
        last saw (`sagas.kafka.consumer_lag.unread`).
        """
        try:
            held = [
                tp
                for tp in consumer.assignment()
                if tp.topic in self.start_topics and tp.partition == partition
            ]
        except Exception:  # noqa: BLE001 - between assignments: nothing is held here
            return False
        if self.paused:
            return bool(held)
        return any((unread(consumer, tp) or 0) > 0 for tp in held)

    def apply(self, consumer: Any) -> None:
        """Pause or resume the trigger partitions this replica is assigned."""
        change = admission.gate(self.limits, self.in_flight, self.paused)
        if change is GateChange.KEEP or not self.start_topics:
            return
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self.start_topics]
        except Exception:  # noqa: BLE001 - between assignments: the next batch applies it
            return
        if change is GateChange.PAUSE:
            consumer.pause(*tps)
            self.paused = True
            self.metrics.pauses.inc()
            log.info(
                "%d sagas in flight (bound %d): new starts wait in Kafka on %s",
                self.in_flight,
                self.limits.high,
                ", ".join(sorted(self.start_topics)),
            )
        else:
            consumer.resume(*tps)
            self.paused = False
            log.info("%d sagas in flight: admitting new starts again", self.in_flight)
        self.metrics.paused.set(1 if self.paused else 0)


def _ends(records: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
    return {tp: rs[-1].offset + 1 for tp, rs in records.items() if rs}
