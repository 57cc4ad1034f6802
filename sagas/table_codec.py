"""The one place that knows how the coordinator's table stores its values.

A value of the table (`sagas.saga_table`) is a `TableValue`: a saga's state, or
`EarlyEvents` (records that arrived before their saga started, held until it
does or until they expire). Everything else — the batch step, timers, the
census, the HTTP API — reads and writes the table through this module and
never looks at the bytes.

Stored forms: a saga state is its JSON (`sagas.state_codec`); early events are
``E`` followed by JSON ``{"expires": ..., "records": [...]}``. Readers that go
over the whole table (recovery's deadlines, the census, listings) do not build
the model: they read the few fields they need from the stored JSON (`summary`,
`name_and_status`, `deadlines`), which is why those live here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from events.records import InRecord
from sagas.state import SagaState, SagaStatus
from sagas.state_codec import dump_state, load_state

#: first byte of a value that is not a saga yet but events held for one
EARLY_MARKER = b"E"
#: timer tokens of the table's own deadlines (the state machine's tokens are its own)
EARLY_TOKEN = "early:"
PURGE_TOKEN = "purge:"
TERMINAL_STATUSES = frozenset(status.value for status in SagaStatus if status.terminal)


@dataclass(frozen=True, slots=True)
class EarlyEvents:
    """Records for a saga not started yet, replayed when it starts, dead-lettered at
    ``expires`` if it has not."""

    expires: float
    records: tuple[InRecord, ...] = ()

    def plus(self, record: InRecord) -> EarlyEvents:
        return EarlyEvents(self.expires, (*self.records, record))


TableValue = SagaState | EarlyEvents


def encode_value(value: TableValue) -> bytes:
    if isinstance(value, SagaState):
        return dump_state(value)
    return EARLY_MARKER + orjson.dumps(
        {"expires": value.expires, "records": [_held(r) for r in value.records]}
    )


def decode_value(raw: bytes) -> TableValue:
    """The value stored as ``raw``; `pydantic.ValidationError` if a state is not one."""
    if raw[:1] == EARLY_MARKER:
        doc = orjson.loads(raw[1:])
        return EarlyEvents(doc["expires"], tuple(_record(r) for r in doc["records"]))
    return load_state(raw)


def _held(record: InRecord) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
        "value": (record.value or b"").decode("utf-8", "replace"),
        "headers": [[k, v.decode("utf-8", "replace")] for k, v in record.headers],
    }


def _record(doc: dict[str, Any]) -> InRecord:
    key = doc.get("key")
    return InRecord(
        doc["topic"],
        doc.get("partition", -1),
        doc.get("offset", -1),
        None if key is None else key.encode(),
        doc["value"].encode(),
        [(k, v.encode()) for k, v in doc["headers"]],
    )


# -- reading stored values without building them -------------------------------------------


def saga_state(raw: bytes | None) -> SagaState | None:
    """The saga state stored as ``raw``; None for no value or held events."""
    if raw is None or raw[:1] == EARLY_MARKER:
        return None
    return load_state(raw)


def saga_document(raw: bytes) -> dict[str, Any] | None:
    """A stored saga state as plain JSON (not validated: cheap); None for held events."""
    if raw[:1] == EARLY_MARKER:
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def deadlines(
    items: Iterable[tuple[bytes, bytes]], retention: float
) -> list[tuple[float, str, str]]:
    """(due, saga id, token) of every deadline in stored values: steps' timers,
    early-event expiries, and the retention purge of finished sagas."""
    entries: list[tuple[float, str, str]] = []
    for key, raw in items:
        saga_id = key.decode()
        if raw[:1] == EARLY_MARKER:
            early = orjson.loads(raw[1:])
            entries.append((early["expires"], saga_id, EARLY_TOKEN + saga_id))
            continue
        # Plain JSON, not the model: recovery reads every saga the replica owns.
        doc = orjson.loads(raw)
        entries.extend((t["due"], saga_id, token) for token, t in doc["timers"].items())
        if doc["status"] in TERMINAL_STATUSES and doc.get("finished_at") is not None:
            entries.append((doc["finished_at"] + retention, saga_id, PURGE_TOKEN + saga_id))
    return entries


def holds_timer(raw: bytes | None, token: str) -> bool:
    """Does the stored saga state arm ``token``? (No value, or held events: no.)"""
    if raw is None or raw[:1] == EARLY_MARKER:
        return False
    return token in orjson.loads(raw).get("timers", ())


class Summary(NamedTuple):
    """The fields a listing filters and sorts on, read without parsing the whole state."""

    name: str
    status: str
    started_at: float
    updated_at: float


_HEAD = re.compile(
    rb'^\{"saga_id":"(?:[^"\\]|\\.)*","name":"([^"\\]*)","version":\d+,"status":"(\w+)"'
    rb'(,"attention":")?'
)
_TIMES = re.compile(rb',"stage":\d+,"started_at":([0-9.eE+-]+),"updated_at":([0-9.eE+-]+)')


def name_and_status(raw: bytes) -> tuple[str, str] | None:
    """(saga name, status) of a stored state, None for held events: the cheapest read, for
    counting a whole table."""
    seen = census_entry(raw)
    return None if seen is None else (seen[0], seen[1])


def census_entry(raw: bytes) -> tuple[str, str, bool] | None:
    """(saga name, status, marked for an operator) of a stored state, None for held
    events; read from the head of the JSON, where `dump_state` writes them."""
    if raw[:1] == EARLY_MARKER:
        return None
    head = _HEAD.match(raw)
    if head is not None:
        return head.group(1).decode(), head.group(2).decode(), head.group(3) is not None
    doc = orjson.loads(raw)
    return str(doc.get("name")), str(doc.get("status")), doc.get("attention") is not None


def summary(raw: bytes) -> Summary | None:
    """Name, status and times of a stored state (None for held events).

    A listing of a large table must not parse every saga's context and history:
    the fields are matched where `dump_state` writes them (the top-level
    ``stage`` is the last one: nothing after it holds such a key), falling
    back to a full parse if the layout ever changes.
    """
    if raw[:1] == EARLY_MARKER:
        return None
    return _summary(raw)


def _summary(raw: bytes) -> Summary:
    head = _HEAD.match(raw)
    at = raw.rfind(b',"stage":')
    times = _TIMES.match(raw, at) if head is not None and at >= 0 else None
    if head is not None and times is not None:
        return Summary(
            head.group(1).decode(),
            head.group(2).decode(),
            float(times.group(1)),
            float(times.group(2)),
        )
    doc = orjson.loads(raw)
    return Summary(
        str(doc.get("name")),
        str(doc.get("status")),
        float(doc.get("started_at") or 0.0),
        float(doc.get("updated_at") or 0.0),
    )
