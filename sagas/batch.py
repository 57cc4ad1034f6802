"""The batch step: records in, what to send, write and arm out. Pure: no Kafka, no clock.

`apply_batch` takes records one by one: decoded, re-routed to their saga's
partition, routed to a definition and decided (`sagas.machine.decide`), held
until their saga starts, or dead-lettered. Whatever a record makes raise, it is
dead-lettered (``processing-error``), what it half did is undone and its saga is
marked for an operator (`SagaState.attention`): no record can crash-loop a
replica, nor leave a saga waiting for it unseen. The coordinator shell then persists the
`BatchResult` (`sagas.coordinator`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from events.codec import decode
from events.dead_letters import PROCESSING_ERROR, dead_letter, describe, error_details
from events.envelope import CloudEvent
from events.errors import DecodeError
from events.partitioning import partition_for
from events.records import InRecord, OutRecord
from sagas import control
from sagas.batch_values import BatchContext, BatchResult, DecisionSignal, StateWrite, Timer
from sagas.logs import saga_fields
from sagas.messages import Abort, Outcome, Resolve, RetryFailed, Skip, StartSaga
from sagas.routing import Reject, Route, route
from sagas.state import HistoryEntry, SagaState
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN, EarlyEvents, TableValue, encode_value

log = logging.getLogger("sagas.coordinator")

#: "the batch held nothing for this saga" in a snapshot (None is a removed saga)
_ABSENT: Any = object()
#: what an operator does to a saga; applied, it clears the saga's mark (`SagaState.attention`)
_OPERATOR = (Abort, RetryFailed, Skip, Resolve)
#: control records for an existing saga: one sent right after its start (``saga.starts``,
#: not ordered with ``saga.control``) is held until the start arrives, as early replies are
#: records held at most for one saga not started yet (and half of SAGAS_MAX_RECORD_BYTES)
MAX_HELD = 100
_COMMANDS = frozenset((control.ABORT, control.RETRY, control.SKIP, control.RESOLVE, control.SIGNAL))


def apply_batch(
    ctx: BatchContext, records: Iterable[InRecord], now: float, start_room: int | None = None
) -> BatchResult:
    """Decide ``records`` in order; a saga's later records see its earlier ones.

    Held records expire last: a start later in the batch (on another partition, which
    Kafka does not order with the timer's) finds them still held, and replays them.
    ``start_room``: new sagas this batch may start from ``saga.control`` (the admission
    bound's room, `sagas.admission.room_left`; None: no bound). A new saga's start read
    there past it is not decided but moved to ``saga.starts``, unchanged, where starts
    wait in order while the replica is at its bound (`BatchResult.deferred_starts`)."""
    step = _Step(ctx, now, start_room)
    for record in records:
        step.handle(record)
    for record in step.expiring:
        step.handle(record, expiring=True)
    return step.result


class _Step:
    """One batch in progress: each saga's value lives in ``values`` alone."""

    def __init__(self, ctx: BatchContext, now: float, start_room: int | None) -> None:
        self.ctx = ctx
        self.now = now
        #: new sagas this batch may still start from ``saga.control`` (None: no bound)
        self.start_room = start_room
        #: sagas whose start this batch moved to ``saga.starts``: what is held for them
        #: waits for it (it is not in Kafka yet, so `BatchContext.starts_waiting` may not
        #: see it)
        self.moved: set[str] = set()
        self.result = BatchResult()
        #: saga id -> its value as of the records handled so far (None: none)
        self.values: dict[str, TableValue | None] = {}
        #: the saga the current record is for, and what the batch held for it before
        self.touched: tuple[str, Any, Any] | None = None
        #: timers of held records that fell due, handled once the rest of the batch is
        self.expiring: list[InRecord] = []

    def handle(self, record: InRecord, *, expiring: bool = False) -> None:
        result = self.result
        if not expiring:
            result.consumed[record.topic] += 1
        marks = (len(result.outgoing), len(result.timers), len(result.decisions))
        room, deferred = self.start_room, result.deferred_starts
        self.touched = None
        try:
            self._handle(record, expiring)
        except Exception as exc:  # noqa: BLE001 - isolated per record, reported below
            del result.outgoing[marks[0] :]
            del result.timers[marks[1] :]
            del result.decisions[marks[2] :]
            self.start_room, result.deferred_starts = room, deferred
            self._restore_touched()
            self.processing_error(record, exc)

    def _handle(self, record: InRecord, expiring: bool) -> None:
        ctx = self.ctx
        try:
            event = decode(
                record.value,
                record.headers,
                max_bytes=ctx.limits.max_record_bytes,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        except DecodeError as exc:
            self.dead_letter(record, exc.reason, str(exc))
            return
        saga_key = event.sagaid.encode()
        expected = partition_for(saga_key, ctx.partitions)
        if record.partition != expected:
            # Produced with another partitioner (librdkafka's default, say): send it
            # where the saga's state lives, on the same topic.
            self.result.outgoing.append(
                OutRecord(record.topic, saga_key, record.value, record.headers, expected)
            )
            return
        self.touched = self._snapshot(event.sagaid)
        token = event.data.get("token")
        if (
            record.topic == ctx.topics.control
            and event.type == control.TIMER_FIRED
            and isinstance(token, str)
            and token.startswith((EARLY_TOKEN, PURGE_TOKEN))
        ):
            if not token.startswith(EARLY_TOKEN):
                self.purge(event.sagaid)
            elif expiring:
                self.expire_early(event.sagaid)
            else:
                self.expiring.append(record)
            return
        if record.topic not in ctx.engine_inputs and event.type not in ctx.known_types:
            self.dead_letter(
                record,
                "unknown-type",
                f"no loaded saga definition uses event type {event.type!r} "
                f"(saga {event.sagaid!r}); known: {', '.join(sorted(ctx.known_types))}",
            )
            return
        self.apply(record, event)

    def apply(self, record: InRecord, event: CloudEvent) -> None:
        ctx = self.ctx
        sid = event.sagaid
        value = self.value(sid)
        early = value if isinstance(value, EarlyEvents) else None
        state = value if isinstance(value, SagaState) else None
        routed = route(ctx.registry, ctx.triggers, ctx.topics, record.topic, event, state)
        if isinstance(routed, Reject):
            if routed.reason == "unknown-saga" and event.type == control.TIMER_FIRED:
                return  # a deadline outliving its saga (purged after its retention): stale
            if routed.reason == "unknown-saga" and self.could_be_early(record.topic, event):
                self.keep_early(sid, early, record)
                return
            self.dead_letter(record, routed.reason, routed.detail)
            return
        if (
            self.start_room is not None
            and state is None
            and record.topic == ctx.topics.control
            and isinstance(routed.message, StartSaga)
        ):
            if self.start_room <= 0:
                self.defer_start(record, sid)
                return
            self.start_room -= 1
        self.run_machine(sid, routed, state)
        if early is not None and isinstance(routed.message, StartSaga):
            self.replay_early(sid, early)

    def run_machine(self, sid: str, routed: Route, state: SagaState | None) -> None:
        """Apply one message to its saga (`sagas.machine.decide`) and keep what it decided."""
        ctx, result = self.ctx, self.result
        message = routed.message
        decision = ctx.decide(routed.definition, state, message, self.now)
        saga = routed.definition.name
        reopened = (
            state is not None
            and state.terminal
            and decision.state is not None
            and not decision.state.terminal
        )
        started = isinstance(message, StartSaga)
        result.decisions.append(DecisionSignal(saga, decision, started, reopened))
        if decision.outcome is not Outcome.APPLIED or decision.state is None:
            if decision.outcome is not Outcome.STALE_TIMER:
                # A person's answer that came too late (or twice) is worth an operator's eye.
                level = (
                    logging.INFO if decision.outcome is Outcome.IGNORED_SIGNAL else logging.DEBUG
                )
                log.log(
                    level,
                    "saga %s: %s (%s)",
                    sid,
                    decision.outcome.value,
                    decision.note,
                    extra=saga_fields(sid, None, saga=saga),
                )
            return
        new = decision.state
        if new.attention is not None and isinstance(message, _OPERATOR):
            new.attention = None  # the operator has looked, and acted
        self.write(new.saga_id, new)
        key = new.saga_id.encode()
        outgoing = result.outgoing
        for out in decision.commands:
            value, headers = out.emitted.encode()
            outgoing.append(OutRecord(out.topic, key, value, headers))
        for event in decision.lifecycle:
            value, headers = event.encode()
            outgoing.append(OutRecord(ctx.topics.lifecycle, key, value, headers))
        if decision.lifecycle and log.isEnabledFor(logging.INFO):
            for event in decision.lifecycle:
                reason = event.data.get("reason")
                log.info(
                    "%s%s",
                    event.type,
                    f": {reason}" if reason else "",
                    extra=saga_fields(sid, event.data.get("step"), saga=saga),
                )
        result.timers.extend(Timer(t.due, new.saga_id, t.token) for t in decision.timers)
        if new.terminal and new.finished_at is not None:
            due = new.finished_at + ctx.limits.retention
            result.timers.append(Timer(due, new.saga_id, PURGE_TOKEN + new.saga_id))

    def defer_start(self, record: InRecord, sid: str) -> None:
        """At the bound: the start waits on ``saga.starts`` (paused there) instead of
        starting a saga the replica has no room for. The same value and headers, keyed by
        its saga id (whatever key it came with) on its saga's partition, so that under
        exactly_once it goes in the transaction that commits the control record's offset."""
        ctx = self.ctx
        self.result.outgoing.append(
            OutRecord(
                ctx.topics.starts, sid.encode(), record.value, record.headers, record.partition
            )
        )
        self.result.deferred_starts += 1
        self.moved.add(sid)

    # -- the sagas' values ----------------------------------------------------------------

    def value(self, sid: str) -> TableValue | None:
        """The saga's value: written earlier in this batch, else as the table holds it."""
        if sid not in self.values:
            self.values[sid] = self.ctx.read(sid)
        return self.values[sid]

    def write(self, sid: str, value: TableValue | None) -> None:
        self.values[sid] = value
        raw = None if value is None else encode_value(value)
        self.result.writes[sid] = StateWrite(value, raw)

    # -- events that arrive before their saga -------------------------------------------

    def could_be_early(self, topic: str, event: CloudEvent) -> bool:
        if topic == self.ctx.topics.control:
            return event.type in _COMMANDS
        if topic in self.ctx.engine_inputs:
            return False
        return any(
            step.listens_on == topic and step.settled_by(event.type)
            for definition in self.ctx.registry
            for step in definition.steps
        )

    def keep_early(self, sid: str, held: EarlyEvents | None, record: InRecord) -> None:
        if held is not None:
            count = len(held.records)
            size = sum(len(r.value or b"") for r in [*held.records, record])
            if count >= MAX_HELD or size > self.ctx.limits.max_record_bytes // 2:
                # the held value is one table record: it must stay storable
                self.dead_letter(
                    record,
                    "unknown-saga",
                    f"{count} records are held already for saga {sid!r}, which has not "
                    f"started (at most {MAX_HELD}, {self.ctx.limits.max_record_bytes // 2} "
                    f"bytes); check the record's sagaid and that its start was published",
                )
                return
        first = held is None
        if held is None:
            held = EarlyEvents(self.now + self.ctx.limits.early_event_grace)
        self.write(sid, held.plus(record))
        if first:
            self.result.timers.append(Timer(held.expires, sid, EARLY_TOKEN + sid))

    def replay_early(self, sid: str, held: EarlyEvents) -> None:
        for kept in held.records:
            record = InRecord(kept.topic, -1, -1, sid.encode(), kept.value, kept.headers)
            self.apply(record, decode(record.value, record.headers))

    def purge(self, sid: str) -> None:
        """Forget a saga that finished longer ago than the retention (a tombstone in the log)."""
        state = self.value(sid)
        if not isinstance(state, SagaState):
            return
        finished = state.finished_at
        if not state.terminal or finished is None:
            return
        if finished + self.ctx.limits.retention > self.now:
            return  # repaired and finished again since this timer was set
        self.write(sid, None)

    def expire_early(self, sid: str) -> None:
        held = self.value(sid)
        if not isinstance(held, EarlyEvents) or held.expires > self.now:
            return  # started since, or held longer since (a copy of an earlier timer)
        ctx = self.ctx
        grace = ctx.limits.early_event_grace
        partition = partition_for(sid.encode(), ctx.partitions)
        if sid in self.moved or ctx.starts_waiting(partition):
            # The start may be among them (a replica at its bound lets starts wait in
            # Kafka, longer than any grace), or this batch just moved it there: wait for
            # them, then the grace again.
            again = EarlyEvents(self.now + grace, held.records)
            self.write(sid, again)
            self.result.timers.append(Timer(again.expires, sid, EARLY_TOKEN + sid))
            log.info(
                "saga %s: %d held records wait %ss more: starts for partition %d still "
                "wait unread in Kafka",
                sid,
                len(held.records),
                grace,
                partition,
                extra=saga_fields(sid, None),
            )
            return
        for record in held.records:
            self.dead_letter(
                record,
                "unknown-saga",
                f"no saga {sid!r} started within {grace}s of this event; check the "
                f"record's sagaid and that the saga's trigger was published",
            )
        self.write(sid, None)

    # -- undoing a record that raised ------------------------------------------------------

    def _snapshot(self, sid: str) -> tuple[str, Any, Any]:
        """What the batch holds for ``sid``; every change a record makes is keyed by it."""
        return (sid, self.values.get(sid, _ABSENT), self.result.writes.get(sid, _ABSENT))

    def _restore_touched(self) -> None:
        """Put back what the batch held for the saga the failed record touched, if any.

        A method of its own, not inline in `handle`: there mypy takes ``touched`` for the
        None it was just set to (the call to `_handle` between does not widen it again),
        and the compiled build (`sagas.compiled_build`) trusts that and raises TypeError."""
        if self.touched is not None:
            self._restore(self.touched)

    def _restore(self, snapshot: tuple[str, Any, Any]) -> None:
        sid, value, write = snapshot
        for held, before in ((self.values, value), (self.result.writes, write)):
            if before is _ABSENT:
                held.pop(sid, None)
            else:
                held[sid] = before

    # -- dead letters -------------------------------------------------------------------

    def processing_error(self, record: InRecord, exc: Exception) -> None:
        """A record our code raised on (a bug): dead-lettered with the exception's type and
        digest, logged with its traceback, counted, and the batch goes on."""
        sid = self.touched[0] if self.touched is not None else None
        log.error(
            "record %s[%s]@%s (saga %r) raised %s; dead-lettered as %s",
            record.topic, record.partition, record.offset, sid, describe(exc), PROCESSING_ERROR,
            exc_info=exc,
            extra=saga_fields(sid, None, reason=PROCESSING_ERROR, topic=record.topic),
        )  # fmt: skip
        self.dead_letter(
            record, PROCESSING_ERROR,
            f"{describe(exc)}; a bug in sagastream or its definitions: report it with the "
            f"digest; the record is kept here unchanged",
            extra=error_details(exc),
        )  # fmt: skip
        if sid is not None:
            self.mark(sid, record, exc)

    def mark(self, sid: str, record: InRecord, exc: Exception) -> None:
        """Mark the saga a record raised on for an operator, so that it does not stall
        unseen: `SagaState.attention` and a history entry (``sagas status``, the API,
        ``saga_needs_operator``). Held events or no saga yet: the dead letter says it all."""
        why = (
            f"{PROCESSING_ERROR}: {describe(exc)} on {record.topic}[{record.partition}]"
            f"@{record.offset}; the record is on the dead-letter topic"
        )
        try:
            state = self.value(sid)
            if not isinstance(state, SagaState):
                return
            marked = state.working_copy()
            marked.attention = why
            marked.updated_at = max(state.updated_at, self.now)
            marked.history.append(HistoryEntry(self.now, PROCESSING_ERROR, None, why))
            encode_value(marked)  # a state that cannot be stored raises here, before a write
        except Exception:  # noqa: BLE001 - the saga's own value is what raised: the log says it
            return
        self.write(sid, marked)

    def dead_letter(
        self,
        record: InRecord,
        reason: str,
        detail: str,
        extra: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.result.dead_letters[reason] += 1
        key = record.key
        log.warning(
            "dead letter from %s[%s]@%s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
            extra=saga_fields(
                key.decode("utf-8", "replace") if key else None,
                None,
                reason=reason,
                topic=record.topic,
            ),
        )
        letter = dead_letter(record, self.ctx.topics.deadletter, reason, detail, extra or ())
        self.result.outgoing.append(letter)
