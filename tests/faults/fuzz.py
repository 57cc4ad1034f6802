"""Malformed records for every topic the coordinator and the services read (hypothesis).

`bad_record(topics, ...)` is a hypothesis strategy of `BadRecord`: garbage
bytes, truncated JSON, values over the size limit, CloudEvents with
attributes of the wrong JSON type, unknown event types, a missing
``sagaid`` (structured and binary mode), replies for sagas that never
existed, command payloads of the wrong shape, orders whose lines are
not lines, control records (start, timer, operator commands) with a field
of the wrong JSON type, and triggers whose saga id breaks the grammar. Replays of old commands are taken from the command topics
themselves (`replay_record`). Each record carries ``x-fuzz-id: <uuid>`` so
its dead letter can be found again.

``expect`` says what the system must do with it:

* ``deadletter``: some reader must put it on ``saga.deadletter`` unchanged,
  with ``x-dlq-reason`` and the topic it came from;
* ``ignored``: only participants read the topic and none handles the type;
  they skip it and count it (``participant_commands_total{result="ignored"}``);
* ``no-effect``: a replay; it must change nothing (the ledger audit checks).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from events.codec import DEFAULT_MAX_BYTES

Headers = list[tuple[str, bytes]]
MARKER = "x-fuzz-id"
CT = ("content-type", b"application/cloudevents+json")


@dataclass(frozen=True)
class Topics:
    """The topics read, by who reads them (names with the run's prefix)."""

    orders: str  # coordinator (trigger) and the order service
    replies: dict[str, str]  # reply topic -> a success type the coordinator expects there
    control: str  # coordinator
    commands: dict[str, str]  # command topic -> a command type its participant handles
    lifecycle: str  # the order service

    def coordinator(self) -> list[str]:
        return [self.orders, *self.replies, self.control]

    def all(self) -> list[str]:
        return [*self.coordinator(), *self.commands, self.lifecycle]


@dataclass(frozen=True)
class BadRecord:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    expect: str  # deadletter | ignored | no-effect
    saga_id: str | None = None  # a saga this record starts (order.placed with bad lines)

    @property
    def marker(self) -> str:
        return dict(self.headers)[MARKER].decode()


def _event(type_: str, sagaid: str | None, data: Any, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "fuzz",
        "type": type_,
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
    }
    if sagaid is not None:
        doc["sagaid"] = sagaid
    doc["data"] = data
    doc.update(extra)
    return doc


def _marked(headers: Headers) -> Headers:
    return [*headers, (MARKER, str(uuid.uuid4()).encode())]


#: command type -> payloads its participant must refuse (wrong shape or JSON type)
BAD_PAYLOADS: dict[str, list[Any]] = {
    "inventory.reserve": [
        {"lines": 5},
        {"lines": "lines"},
        {"lines": []},
        {"lines": [{"qty": -1}]},
    ],
    "payment.authorize": [{"amount": "lots", "customer_id": 7}, {"amount": -5}, {}],
    "shipping.schedule": [{"order_id": 5}, {"order_id": ["a"]}],
}
#: (attribute, a value of the wrong JSON type or form for it)
WRONG_ATTRIBUTES: list[tuple[str, Any]] = [
    *(
        (a, v)
        for a in ("id", "sagaid", "type", "source")
        for v in (123, 1.5, True, ["a"], {"a": 1}, "")
    ),
    *(("data", v) for v in (123, "text", ["a"], True)),
    *(("time", v) for v in (123, "yesterday", "2026-13-45T99:00:00Z")),
    *(("specversion", v) for v in ("0.3", 1.0, None)),
]

#: control record type -> its data when well-formed (every field the coordinator reads)
CONTROL_DATA: dict[str, dict[str, Any]] = {
    "saga.start": {"saga": "order", "version": 1, "data": {"order_id": "x"}},
    "saga.timer.fired": {"token": "t-1"},
    "saga.abort": {"reason": "fuzz"},
    "saga.retry": {"reason": "fuzz"},
    "saga.skip": {"step": "payment", "reason": "fuzz"},
    "saga.resolve": {"reason": "fuzz"},
}
#: saga ids outside the grammar (events.saga_ids): a trigger with one is dead-lettered
BAD_SAGA_IDS = ["has space", "tab\there", "esc\x1b[31m", "x" * 201, "-leading-dash", "é-accent"]


def _fits(field: str, value: Any) -> bool:
    """Whether ``value`` is of the type the control field takes (then it is not a bad one)."""
    if field == "version":
        return type(value) is int and 1 <= value < 2**31
    if field == "data":
        return isinstance(value, dict)
    if field == "reason":
        return value is None or isinstance(value, str)
    return isinstance(value, str) and value != ""


_saga_ids = st.uuids().map(lambda u: f"fuzz-{u}")
_serial = itertools.count(1)
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def bad_record(draw: st.DrawFn, topics: Topics) -> BadRecord:
    kind = draw(
        st.sampled_from(
            [
                "garbage",
                "truncated-json",
                "huge",
                "wrong-attribute-type",
                "unknown-type",
                "missing-sagaid",
                "missing-sagaid-binary",
                "reply-to-unknown-saga",
                "wrong-payload",
                "order-with-bad-lines",
                "control-field",
                "trigger-bad-saga-id",
            ]
        )
    )
    topic = draw(st.sampled_from(topics.all()))
    # Hypothesis repeats its "simplest" uuid across examples: a serial keeps each record's
    # saga its own (a reply meant for no saga must not find one another record started).
    sid = f"{draw(_saga_ids)}-{next(_serial)}"
    key: bytes | None = sid.encode()
    headers: Headers = [CT]
    expect = "deadletter"
    started: str | None = None
    if kind == "garbage":
        value: bytes | None = draw(
            st.one_of(st.binary(max_size=300), st.just(b""), st.none(), st.text().map(str.encode))
        )
        headers = draw(st.sampled_from([[], [CT]]))
        key = draw(st.sampled_from([key, None])) if value is not None else key
    elif kind == "truncated-json":
        full = orjson.dumps(_event("order.placed", sid, {"order_id": "x", "lines": []}))
        value = full[: draw(st.integers(1, len(full) - 1))]
    elif kind == "huge":
        # Participants' topics only: on a coordinator topic such a record is a poison pill
        # (`test_9_poison_pill`, a known bug), which would take the shared system down.
        topic = draw(st.sampled_from([*topics.commands, topics.lifecycle]))
        size = draw(st.integers(DEFAULT_MAX_BYTES + 1, DEFAULT_MAX_BYTES + 50_000))
        value = orjson.dumps(_event("order.placed", sid, {"blob": ""}))
        value = value.replace(b'"blob":""', b'"blob":"' + b"x" * (size - len(value)) + b'"')
    elif kind == "wrong-attribute-type":
        attribute, wrong = draw(st.sampled_from(WRONG_ATTRIBUTES))
        doc = _event("order.placed", sid, {})
        doc[attribute] = wrong
        value = orjson.dumps(doc)
    elif kind == "unknown-type":
        type_ = "fuzz." + draw(st.text("abcdefghij", min_size=1, max_size=12))
        value = orjson.dumps(_event(type_, sid, draw(st.dictionaries(st.text(max_size=5), _json))))
        if topic not in topics.coordinator():
            expect = "ignored"  # only participants read it, and they skip types they lack
    elif kind == "missing-sagaid":
        value = orjson.dumps(_event("order.placed", None, {}))
    elif kind == "missing-sagaid-binary":
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_source", b"fuzz"),
            ("ce_type", b"order.placed"),
            ("content-type", b"application/json"),
        ]
        value = orjson.dumps(draw(st.dictionaries(st.text(max_size=5), _json, max_size=3)))
    elif kind == "reply-to-unknown-saga":
        topic, type_ = draw(st.sampled_from(sorted(topics.replies.items())))
        value = orjson.dumps(_event(type_, sid, {}, causationid=str(uuid.uuid4())))
    elif kind == "wrong-payload":
        topic, type_ = draw(st.sampled_from(sorted(topics.commands.items())))
        value = orjson.dumps(_event(type_, sid, draw(st.sampled_from(BAD_PAYLOADS[type_]))))
    elif kind == "control-field":
        # A control record (start, timer, operator command) with one field of its data
        # replaced by a value of the wrong JSON type: refused at decode, never a crash.
        topic = topics.control
        type_, data = draw(st.sampled_from(sorted(CONTROL_DATA.items())))
        field = draw(st.sampled_from(sorted(data)))
        data = {**data, field: draw(_json.filter(lambda v, f=field: not _fits(f, v)))}
        value = orjson.dumps(_event(type_, sid, data))
    elif kind == "trigger-bad-saga-id":
        topic = topics.orders
        sid = draw(st.sampled_from(BAD_SAGA_IDS))
        key = sid.encode()
        value = orjson.dumps(_event("order.placed", sid, {"order_id": "x", "lines": []}))
    else:  # order-with-bad-lines: a saga starts; its first step can never take effect
        topic = topics.orders
        lines = draw(st.sampled_from([5, "lines", [], [{"qty": -1}], [{"sku": "", "qty": 0}]]))
        data = {"order_id": f"fuzz-{sid[-8:]}", "customer_id": "cust-001", "amount": 100}
        value = orjson.dumps(_event("order.placed", sid, {**data, "lines": lines}))
        started = sid
    return BadRecord(kind, topic, key, value, _marked(headers), expect, started)


def replay_record(record: Any) -> BadRecord:
    """A command already handled, published again as it was."""
    headers = _marked([(k, bytes(v)) for k, v in record.headers or ()])
    return BadRecord(
        "replayed-command", record.topic, record.key, record.value, headers, "no-effect"
    )
