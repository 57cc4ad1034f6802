"""One record never crashes the coordinator: what it cannot use is dead-lettered, the batch goes on.

Drives `sagas.batch.Batch` (the coordinator's pure batch step) with records as
Kafka hands them over; a dead letter is a record bound for ``saga.deadletter``
with its ``x-dlq-reason``, which is what an operator sees.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.kafka_settings import KafkaSettings
from events.partitioning import partition_for
from sagas import batch as batch_module
from sagas import control
from sagas.batch import Batch
from sagas.coordinator import Coordinator
from sagas.loader import DefinitionRegistry
from sagas.settings import CoordinatorSettings
from sagas.state_codec import load_state
from sagas.table_values import EARLY_MARKER
from tests.unit.json_strategies import json_values
from tests.unit.saga_fixtures import CHARGED, RESERVED, SCHEDULED, three_step, with_pivot

NOW = 1_700_000_000.0


def coordinator() -> Coordinator:
    """A replica that is built but never started: nothing here talks to Kafka."""
    registry = DefinitionRegistry([three_step(), with_pivot()])
    return Coordinator(
        registry,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        settings=CoordinatorSettings(),
    )


def record(c: Coordinator, topic: str, doc: Any, key: str = "s-1") -> dict[str, Any]:
    value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return {
        "topic": topic,
        "partition": partition_for(key.encode(), c.kafka.partitions),
        "offset": 7,
        "key": key.encode(),
        "value": value,
        "headers": [("content-type", b"application/cloudevents+json")],
    }


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


def dead_letters(c: Coordinator, b: Batch) -> list[dict[str, bytes]]:
    return [dict(out[3]) for out in b.outgoing if out[0] == c.topics.deadletter]


def dead_lettered(c: Coordinator, reason: str) -> float:
    value = c.metrics_registry.get_sample_value("saga_dead_letters_total", {"reason": reason})
    return value or 0.0


def handle(b: Batch, rec: dict[str, Any]) -> None:
    b.handle(rec["topic"], rec["partition"], rec["offset"], rec["key"], rec["value"],
             rec["headers"])  # fmt: skip


def start(c: Coordinator, sid: str, **data: Any) -> dict[str, Any]:
    return record(c, c.topics.control, envelope(control.START, sid, data), key=sid)


def test_a_start_whose_version_is_a_json_list_is_dead_lettered_not_a_crash_loop() -> None:
    """Issue 17: ``"version": [1]`` raised TypeError in the registry lookup; rc 70, for ever."""
    c = coordinator()
    b = Batch(c, NOW)
    handle(b, start(c, "s-bad", saga="order", version=[1], data={}))
    handle(b, start(c, "s-good", saga="order", data={}))
    (dead,) = dead_letters(c, b)
    assert dead["x-dlq-reason"] == b"invalid-control"
    assert b"data.version" in dead["x-dlq-detail"]
    assert "s-good" in b.writes and "s-bad" not in b.writes
    assert dead_lettered(c, "invalid-control") == 1


def test_a_record_our_code_raises_on_is_dead_lettered_undone_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a decision raises (a bug), the record goes to the dead-letter topic with
    reason ``processing-error``, the exception's type and digest; what it half did is undone."""
    c = coordinator()
    real = batch_module.decide

    def buggy(definition: Any, state: Any, message: Any, now: float) -> Any:
        if getattr(message, "event", None) is not None and message.event.id == "poison":
            raise KeyError("customer")
        return real(definition, state, message, now)

    monkeypatch.setattr(batch_module, "decide", buggy)
    b = Batch(c, NOW)
    handle(b, start(c, "s-1", saga="order", data={"order_id": "o-1"}))
    written = b.writes["s-1"]
    commands = len(b.outgoing)
    reply = envelope(RESERVED, "s-1", {}, id="poison", causationid="whatever")
    handle(b, record(c, "inventory.replies", reply))
    handle(b, start(c, "s-2", saga="order", data={}))
    (dead,) = dead_letters(c, b)
    assert dead["x-dlq-reason"] == b"processing-error"
    assert dead["x-dlq-exception"] == b"KeyError"
    assert len(dead["x-dlq-digest"]) == 12
    assert b.writes["s-1"] == written  # the saga is as the record found it
    assert "s-2" in b.writes and len(b.outgoing) > commands + 1
    assert dead_lettered(c, "processing-error") == 1


def test_a_start_or_trigger_with_an_invalid_saga_id_is_dead_lettered_as_invalid_saga_id() -> None:
    c = coordinator()
    b = Batch(c, NOW)
    for sid in ("has space", "line\nbreak", "x" * 201, "\x1b[31mred", "abc\n"):
        start_doc = envelope(control.START, sid, {"saga": "order"})
        handle(b, record(c, c.topics.control, start_doc, key=sid))
        handle(b, record(c, "orders", envelope("order.placed", sid, {}), key=sid))
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
    b = Batch(c, NOW)
    handle(b, start(c, "s-1", saga="order", data={"order_id": "o-1"}))
    for topic, doc in fuzzed:
        name = c.topics.control if topic == "control" else topic
        sid = doc.get("sagaid")
        key = sid if isinstance(sid, str) and sid else "s-1"
        handle(b, record(c, name, doc, key=key))  # must not raise
    handle(b, start(c, "s-after", saga="order", data={}))
    assert "s-after" in b.writes, "a record after the fuzzed ones was not decided"
    for dead in dead_letters(c, b):
        # every bad value is refused by a check that names it, not by the safety net
        assert dead["x-dlq-reason"] != b"processing-error", dead
    for out in b.outgoing:
        assert isinstance(out[2], bytes) or out[2] is None
    for raw in b.writes.values():
        if raw is not None and raw[:1] != EARLY_MARKER:
            load_state(raw)  # what would be logged to the changelog reads back
