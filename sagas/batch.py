"""One batch of records through the state machine: what to send, write and arm.

`Batch.handle` takes records one by one (decoded, routed, decided, or
dead-lettered); the coordinator then sends `outgoing`, waits for Kafka, and
only then writes `writes` to the table and arms `timers`. Nothing here talks
to Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from events.codec import decode, encode
from events.dead_letters import PROCESSING_ERROR, describe, processing_error_headers
from events.envelope import CloudEvent
from events.errors import DecodeError
from events.partitioning import partition_for
from sagas import control
from sagas.loader import DefinitionRegistry
from sagas.logs import saga_fields
from sagas.machine import decide
from sagas.messages import Outcome, StartSaga
from sagas.routing import Reject, Route, route
from sagas.state import SagaState
from sagas.state_codec import dump_state, load_state
from sagas.table_values import EARLY_MARKER, EARLY_TOKEN, PURGE_TOKEN

if TYPE_CHECKING:
    from sagas.coordinator import Coordinator

log = logging.getLogger("sagas.coordinator")

#: Largest dead letter sent with its value: under the producer's 1,000,000-byte request
#: limit with room for the batch framing.
DEAD_LETTER_VALUE_LIMIT = 900_000
#: "the batch held nothing for this saga" in a snapshot (None is a held tombstone)
_ABSENT = object()


def known_types(registry: DefinitionRegistry) -> frozenset[str]:
    """Every event type a loaded definition expects on the topics the coordinator reads."""
    types: set[str] = set()
    for definition in registry:
        if definition.trigger is not None:
            types.add(definition.trigger.type)
        for step in definition.steps:
            types.update(step.success, step.failure)
            if step.compensation is not None:
                types.update(step.compensation.success, step.compensation.failure)
    return frozenset(types)


class Batch:
    """What one batch decides: records to send, states to write, timers to arm."""

    def __init__(self, coordinator: Coordinator, now: float) -> None:
        self.c = coordinator
        self.now = now
        self.states: dict[str, bytes | None] = {}
        self.decoded: dict[str, SagaState | None] = {}
        self.writes: dict[str, bytes | None] = {}
        self.outgoing: list[tuple[Any, ...]] = []
        self.timers: list[tuple[float, str, str]] = []
        #: the batch's view of the saga the current record is for, before the record
        self._touched: tuple[str, Any, Any, Any] | None = None

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
    ) -> None:
        """Decide one record; whatever it makes raise, it is dead-lettered and undone
        (``processing-error``), and the batch goes on: no record can crash-loop a replica."""
        c = self.c
        c.metrics.child(c.metrics.messages, topic, "in").inc()
        try:
            header_list = list(headers.items() if isinstance(headers, dict) else headers or [])
        except Exception:  # noqa: BLE001 - not a header sequence: keep none
            header_list = []
        sent, armed = len(self.outgoing), len(self.timers)
        self._touched = None
        try:
            self._handle(topic, partition, offset, key, value, header_list)
        except Exception as exc:  # noqa: BLE001 - isolated per record, reported below
            del self.outgoing[sent:]
            del self.timers[armed:]
            if self._touched is not None:
                self._restore(self._touched)
            self.processing_error(topic, partition, offset, key, value, header_list, exc)

    def _handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        header_list: list[tuple[str, bytes]],
    ) -> None:
        c = self.c
        try:
            event = decode(
                value,
                header_list,
                max_bytes=c.settings.max_record_bytes,
                topic=topic,
                partition=partition,
                offset=offset,
            )
        except DecodeError as exc:
            self.dead_letter(
                topic, partition, offset, key, value, header_list, exc.reason, str(exc)
            )
            return
        saga_key = event.sagaid.encode()
        expected = partition_for(saga_key, c.kafka.partitions)
        if partition != expected:
            # Produced with another partitioner (librdkafka's default, say): send it
            # where the saga's state lives, on the same topic.
            self.outgoing.append((topic, saga_key, value, header_list, expected))
            return
        self._touched = self._snapshot(event.sagaid)
        token = event.data.get("token")
        if (
            topic == c.topics.control
            and event.type == control.TIMER_FIRED
            and isinstance(token, str)
            and token.startswith((EARLY_TOKEN, PURGE_TOKEN))
        ):
            if token.startswith(EARLY_TOKEN):
                self.expire_early(event.sagaid)
            else:
                self.purge(event.sagaid)
            return
        if topic != c.topics.control and event.type not in c.known_types:
            self.dead_letter(
                topic,
                partition,
                offset,
                key,
                value,
                header_list,
                "unknown-type",
                f"no loaded saga definition uses event type {event.type!r} "
                f"(saga {event.sagaid!r}); known: {', '.join(sorted(c.known_types))}",
            )
            return
        self.apply(topic, partition, offset, key, value, header_list, event)

    def apply(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        event: CloudEvent,
    ) -> None:
        c = self.c
        sid = event.sagaid
        raw = self.raw_state(sid)
        early = raw is not None and raw[:1] == EARLY_MARKER
        state = None if raw is None or early else self.state(sid, raw)
        routed = route(c.registry, c.triggers, c.topics.control, topic, event, state)
        if isinstance(routed, Reject):
            if routed.reason == "unknown-saga" and event.type == control.TIMER_FIRED:
                return  # a deadline outliving its saga (purged after its retention): stale
            if routed.reason == "unknown-saga" and self.could_be_early(topic, event):
                self.keep_early(
                    sid, raw if early else None, topic, partition, offset, key, value, headers
                )
                return
            self.dead_letter(
                topic, partition, offset, key, value, headers, routed.reason, routed.detail
            )
            return
        self.decide(sid, routed, state)
        if early and isinstance(routed.message, StartSaga):
            self.replay_early(sid, raw)

    def decide(self, sid: str, routed: Route, state: SagaState | None) -> None:
        c = self.c
        message = routed.message
        decision = decide(routed.definition, state, message, self.now)
        saga = routed.definition.name
        reopened = (
            state is not None
            and state.terminal
            and decision.state is not None
            and not decision.state.terminal
        )
        c.metrics.observe(saga, decision, started=isinstance(message, StartSaga), reopened=reopened)
        if decision.outcome is not Outcome.APPLIED or decision.state is None:
            if decision.outcome is not Outcome.STALE_TIMER:
                log.debug(
                    "saga %s: %s (%s)",
                    sid,
                    decision.outcome.value,
                    decision.note,
                    extra=saga_fields(sid, None, saga=saga),
                )
            return
        new = decision.state
        self.decoded[new.saga_id] = new
        raw = dump_state(new)
        self.states[new.saga_id] = raw
        self.writes[new.saga_id] = raw
        key = new.saga_id.encode()
        for out in decision.commands:
            value, headers = encode(out.event)
            self.outgoing.append((out.topic, key, value, headers))
        for event in decision.lifecycle:
            value, headers = encode(event)
            self.outgoing.append((c.topics.lifecycle, key, value, headers))
        if decision.lifecycle and log.isEnabledFor(logging.INFO):
            for event in decision.lifecycle:
                reason = event.data.get("reason")
                log.info(
                    "%s%s",
                    event.type,
                    f": {reason}" if reason else "",
                    extra=saga_fields(sid, event.data.get("step"), saga=saga),
                )
        self.timers.extend((t.due, new.saga_id, t.token) for t in decision.timers)
        if new.terminal and new.finished_at is not None:
            due = new.finished_at + c.settings.retention
            self.timers.append((due, new.saga_id, PURGE_TOKEN + new.saga_id))

    # -- state access -------------------------------------------------------------------

    def raw_state(self, sid: str) -> bytes | None:
        if sid not in self.states:
            self.states[sid] = self.c.table.get(sid.encode())
        return self.states[sid]

    def state(self, sid: str, raw: bytes) -> SagaState:
        if self.decoded.get(sid) is None:
            self.decoded[sid] = self.c.live.get(sid) or load_state(raw)
        state = self.decoded[sid]
        assert state is not None
        return state

    # -- events that arrive before their saga -------------------------------------------

    def could_be_early(self, topic: str, event: CloudEvent) -> bool:
        if topic == self.c.topics.control:
            return False
        return any(
            step.listens_on == topic and event.type in (*step.success, *step.failure)
            for definition in self.c.registry
            for step in definition.steps
        )

    def keep_early(
        self,
        sid: str,
        raw: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        held: dict[str, Any] = (
            orjson.loads(raw[1:])
            if raw
            else {
                "expires": self.now + self.c.settings.early_event_grace,
                "records": [],
            }
        )
        held["records"].append(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": None if key is None else key.decode("utf-8", "replace"),
                "value": (value or b"").decode("utf-8", "replace"),
                "headers": [[k, v.decode("utf-8", "replace")] for k, v in headers],
            }
        )
        new_raw = EARLY_MARKER + orjson.dumps(held)
        self.states[sid] = new_raw
        self.writes[sid] = new_raw
        if raw is None:
            self.timers.append((held["expires"], sid, EARLY_TOKEN + sid))

    def replay_early(self, sid: str, raw: bytes | None) -> None:
        assert raw is not None
        for record in orjson.loads(raw[1:])["records"]:
            headers = [(k, v.encode()) for k, v in record["headers"]]
            value = record["value"].encode()
            event = decode(value, headers)
            self.apply(record["topic"], -1, -1, sid.encode(), value, headers, event)

    def purge(self, sid: str) -> None:
        """Forget a saga that finished longer ago than the retention (a tombstone in the log)."""
        raw = self.raw_state(sid)
        if raw is None or raw[:1] == EARLY_MARKER:
            return
        state = self.state(sid, raw)
        finished = state.finished_at
        if not state.terminal or finished is None:
            return
        if finished + self.c.settings.retention > self.now:
            return  # repaired and finished again since this timer was set
        self.states[sid] = None
        self.decoded.pop(sid, None)
        self.writes[sid] = None

    def expire_early(self, sid: str) -> None:
        raw = self.raw_state(sid)
        if raw is None or raw[:1] != EARLY_MARKER:
            return
        for record in orjson.loads(raw[1:])["records"]:
            headers = [(k, v.encode()) for k, v in record["headers"]]
            key = record.get("key")
            self.dead_letter(
                record["topic"],
                record.get("partition", -1),
                record.get("offset", -1),
                None if key is None else key.encode(),
                record["value"].encode(),
                headers,
                "unknown-saga",
                f"no saga {sid!r} started within {self.c.settings.early_event_grace}s of this "
                f"event; check the record's sagaid and that the saga's trigger was published",
            )
        self.states[sid] = None
        self.writes[sid] = None

    # -- undoing a record that raised ------------------------------------------------------

    def _snapshot(self, sid: str) -> tuple[str, Any, Any, Any]:
        """What the batch holds for ``sid``; every change a record makes is keyed by it."""
        return (sid, self.states.get(sid, _ABSENT), self.writes.get(sid, _ABSENT),
                self.decoded.get(sid, _ABSENT))  # fmt: skip

    def _restore(self, snapshot: tuple[str, Any, Any, Any]) -> None:
        sid = snapshot[0]
        tables: tuple[dict[str, Any], ...] = (self.states, self.writes, self.decoded)
        for held, before in zip(tables, snapshot[1:], strict=True):
            if before is _ABSENT:
                held.pop(sid, None)
            else:
                held[sid] = before

    # -- dead letters -------------------------------------------------------------------

    def processing_error(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        exc: Exception,
    ) -> None:
        """A record our code raised on (a bug): dead-lettered with the exception's type and
        digest, logged with its traceback, counted, and the batch goes on."""
        sid = self._touched[0] if self._touched is not None else None
        log.error(
            "record %s[%s]@%s (saga %r) raised %s; dead-lettered as %s",
            topic, partition, offset, sid, describe(exc), PROCESSING_ERROR,
            exc_info=exc,
            extra=saga_fields(sid, None, reason=PROCESSING_ERROR, topic=topic),
        )  # fmt: skip
        self.dead_letter(
            topic, partition, offset, key, value, headers, PROCESSING_ERROR,
            f"{describe(exc)}; a bug in sagastream or its definitions: report it with the "
            f"digest; the record is kept here unchanged",
            extra=processing_error_headers(topic, partition, offset, exc)[4:],
        )  # fmt: skip

    def dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        reason: str,
        detail: str,
        extra: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        c = self.c
        c.metrics.child(c.metrics.dead_letters, reason).inc()
        log.warning(
            "dead letter from %s[%s]@%s: %s: %s",
            topic,
            partition,
            offset,
            reason,
            detail,
            extra=saga_fields(
                key.decode("utf-8", "replace") if key else None, None, reason=reason, topic=topic
            ),
        )
        dlq_headers = [
            *(h for h in headers if not h[0].startswith("x-dlq-")),
            ("x-dlq-reason", reason.encode()),
            ("x-dlq-topic", topic.encode()),
            ("x-dlq-partition", str(partition).encode()),
            ("x-dlq-offset", str(offset).encode()),
            ("x-dlq-detail", detail[:1000].encode("utf-8", "replace")),
            *extra,
        ]
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in dlq_headers)
        if size > DEAD_LETTER_VALUE_LIMIT:
            # Our producer could not send the copy (it would fail the batch again on every
            # replay, a poison pill): keep the evidence, drop the bulk.
            dlq_headers.append(("x-dlq-value-dropped", str(len(value or b"")).encode()))
            value = b""
        self.outgoing.append((c.topics.deadletter, key, value, dlq_headers))
