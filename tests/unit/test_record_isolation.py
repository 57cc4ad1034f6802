"""One record never crashes the coordinator: what it cannot use is dead-lettered, the batch goes on.

Drives `sagas.batch.apply_batch` (the coordinator's pure batch step) with records
as Kafka hands them over; a dead letter is a record bound for ``saga.deadletter``
with its ``x-dlq-reason``, which is what an operator sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.partitioning import partition_for
from events.records import InRecord
from events.topics import Topics
from sagas import control
from sagas.batch import apply_batch
from sagas.batch_values import BatchContext, BatchLimits, BatchResult
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.state import SagaState
from sagas.table_codec import decode_value
from tests.unit.json_strategies import json_values
from tests.unit.saga_fixtures import CHARGED, RESERVED, SCHEDULED, three_step, with_pivot

NOW = 1_700_000_000.0


def coordinator() -> BatchContext:
    """What the batch step knows of a replica, over an empty table."""
    registry = DefinitionRegistry([three_step(), with_pivot()])
    return BatchContext(
        registry, Topics(), 8, BatchLimits(1_000_000, 7 * 86400, 30.0), lambda sid: None
    )


def record(c: BatchContext, topic: str, doc: Any, key: str = "s-1") -> InRecord:
    value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    partition = partition_for(key.encode(), c.partitions)
    headers = [("content-type", b"application/cloudevents+json")]
    return InRecord(topic, partition, 7, key.encode(), value, headers)


def envelope(type_: str, sagaid: Any, data: Any, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "rec-1",
        "source": "test",
        "type": type_,
        "sagaid": sagaid,
        "time": "2026-01-01T00:00:00Z",
        "data": data,
        **extra,
    }


def dead_letters(c: BatchContext, b: BatchResult) -> list[dict[str, bytes]]:
    return [dict(out.headers) for out in b.outgoing if out.topic == c.topics.deadletter]


def start(c: BatchContext, sid: str, **data: Any) -> InRecord:
    return record(c, c.topics.control, envelope(control.START, sid, data), key=sid)


def test_a_start_whose_version_is_a_json_list_is_dead_lettered_not_a_crash_loop() -> None:
    """Issue 17: ``"version": [1]`` raised TypeError in the registry lookup; rc 70, for ever."""
    c = coordinator()
    b = apply_batch(
        c,
        [
            start(c, "s-bad", saga="order", version=[1], data={}),
            start(c, "s-good", saga="order", data={}),
        ],
        NOW,
    )
    (dead,) = dead_letters(c, b)
    assert dead["x-dlq-reason"] == b"invalid-control"
    assert b"data.version" in dead["x-dlq-detail"]
    assert "s-good" in b.writes and "s-bad" not in b.writes
    assert b.dead_letters == {"invalid-control": 1}


def test_a_record_our_code_raises_on_is_dead_lettered_undone_and_the_batch_goes_on() -> None:
    """Whatever a decision raises (a bug), the record goes to the dead-letter topic with
    reason ``processing-error``, the exception's type and digest; what it half did is undone."""

    def buggy(definition: Any, state: Any, message: Any, now: float) -> Any:
        if getattr(message, "event", None) is not None and message.event.id == "poison":
            raise KeyError("customer")
        return decide(definition, state, message, now)

    c = dataclasses.replace(coordinator(), decide=buggy)
    first = start(c, "s-1", saga="order", data={"order_id": "o-1"})
    before = apply_batch(c, [first], NOW)
    reply = envelope(RESERVED, "s-1", {}, id="poison", causationid="whatever")
    b = apply_batch(
        c,
        [first, record(c, "inventory.replies", reply), start(c, "s-2", saga="order", data={})],
        NOW,
    )
    (dead,) = dead_letters(c, b)
    assert dead["x-dlq-reason"] == b"processing-error"
    assert dead["x-dlq-exception"] == b"KeyError"
    assert len(dead["x-dlq-digest"]) == 12
    undone, found = b.writes["s-1"].value, before.writes["s-1"].value
    assert isinstance(undone, SagaState) and isinstance(found, SagaState)
    # the saga is as the record found it, and marked for an operator (test_batch_step.py)
    assert (undone.steps, undone.timers, undone.status) == (found.steps, found.timers, found.status)
    assert undone.attention is not None and found.attention is None
    assert "s-2" in b.writes and len(b.outgoing) > len(before.outgoing) + 1
    assert b.dead_letters == {"processing-error": 1}


def test_a_start_or_trigger_with_an_invalid_saga_id_is_dead_lettered_as_invalid_saga_id() -> None:
    c = coordinator()
    records = []
    for sid in ("has space", "line\nbreak", "x" * 201, "\x1b[31mred", "abc\n"):
        start_doc = envelope(control.START, sid, {"saga": "order"})
        records.append(record(c, c.topics.control, start_doc, key=sid))
        records.append(record(c, "orders", envelope("order.placed", sid, {}), key=sid))
    b = apply_batch(c, records, NOW)
    reasons = [d["x-dlq-reason"] for d in dead_letters(c, b)]
    assert reasons == [b"invalid-saga-id"] * 10
    assert not b.writes


# -- every field of every record type the coordinator reads, with any JSON value ---------

ENVELOPE_FIELDS = ("specversion", "id", "source", "type", "sagaid", "time", "datacontenttype",
                   "causationid", "traceparent", "data")  # fmt: skip
#: record type -> (topic, its data as a well-formed record carries it)
RECORD_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    control.START: ("control", {"saga": "order", "version": 1, "data": {"order_id": "o"}}),
    control.TIMER_FIRED: ("control", {"token": "t-1"}),
    control.ABORT: ("control", {"reason": "r"}),
    control.RETRY: ("control", {"reason": "r"}),
    control.SKIP: ("control", {"step": "reserve", "reason": "r"}),
    control.RESOLVE: ("control", {"reason": "r"}),
    "order.placed": ("orders", {"order_id": "o", "lines": []}),
    RESERVED: ("inventory.replies", {"reservation_id": "r"}),
    CHARGED: ("payment.replies", {"payment_id": "p"}),
    SCHEDULED: ("shipping.replies", {}),
}


@st.composite
def fuzzed_records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A well-formed record of some type the coordinator reads, with one field (of the
    envelope or of its data, or one added) replaced by an arbitrary JSON value."""
    type_ = draw(st.sampled_from(sorted(RECORD_TYPES)))
    topic, data = RECORD_TYPES[type_]
    doc = envelope(type_, "s-1", dict(data), causationid="c-1")
    fields = [*ENVELOPE_FIELDS, *(f"data.{name}" for name in data), "data.extra"]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(fields))
        value = draw(json_values)
        if where.startswith("data.") and isinstance(doc.get("data"), dict):
            doc["data"][where[5:]] = value
        elif not where.startswith("data."):
            doc[where] = value
    return topic, doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzzed=st.lists(fuzzed_records(), min_size=1, max_size=4))
def test_any_json_in_any_field_of_any_record_the_coordinator_reads_is_survived(
    fuzzed: list[tuple[str, dict[str, Any]]],
) -> None:
    c = coordinator()
    records = [start(c, "s-1", saga="order", data={"order_id": "o-1"})]
    for topic, doc in fuzzed:
        name = c.topics.control if topic == "control" else topic
        sid = doc.get("sagaid")
        key = sid if isinstance(sid, str) and sid else "s-1"
        records.append(record(c, name, doc, key=key))
    records.append(start(c, "s-after", saga="order", data={}))
    b = apply_batch(c, records, NOW)  # must not raise
    assert "s-after" in b.writes, "a record after the fuzzed ones was not decided"
    for dead in dead_letters(c, b):
        # every bad value is refused by a check that names it, not by the safety net
        assert dead["x-dlq-reason"] != b"processing-error", dead
    for out in b.outgoing:
        assert isinstance(out.value, bytes) or out.value is None
    for write in b.writes.values():
        if isinstance(write.value, SagaState):
            assert write.raw is not None
            assert decode_value(write.raw) == write.value  # the changelog's copy reads back
