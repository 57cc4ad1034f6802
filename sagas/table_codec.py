"""The one place that knows how the coordinator's table stores its values.

A value of the table (`sagas.saga_table`) is a `TableValue`: a saga's state, or
`EarlyEvents` (records that arrived before their saga started, held until it
does or until they expire). Everything else — the batch step, timers, the
census, the HTTP API — reads and writes the table through this module and
never looks at the bytes.

Stored forms: a saga state is its JSON (`sagas.state_codec`); early events are
``E`` followed by JSON ``{"expires": ..., "records": [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
