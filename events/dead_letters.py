"""Dead letters: the consumed record unchanged, bound for the dead-letter topic with
``x-dlq-*`` headers that say why and where it was read (`dead_letter`).

Bad data has its own reasons (`events.errors.DecodeError.reason`). When
decoding, routing or deciding raises anything else, the record is still
dead-lettered and the batch goes on (Kafka Streams' processing exception
handler does the same): one record must never crash-loop a consumer. The
headers name the exception type and a short digest of where it was raised,
so that an operator can group the dead letters of one bug and report it.
"""

from __future__ import annotations

import hashlib
import os
import traceback
from collections.abc import Sequence

from events.records import Headers, InRecord, OutRecord

#: ``x-dlq-reason`` of a record whose processing raised an unexpected exception
PROCESSING_ERROR = "processing-error"
#: Largest dead letter sent with its value: under the producer's 1,000,000-byte request
#: limit with room for the batch framing.
DEAD_LETTER_VALUE_LIMIT = 900_000


def dead_letter(
    record: InRecord,
    topic: str,
    reason: str,
    detail: str | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> OutRecord:
    """``record`` unchanged (its own ``x-dlq-*`` headers replaced), bound for ``topic`` with
    the reason, where it was read, ``detail`` and ``extra`` headers; see `without_value`."""
    headers = [
        *(h for h in record.headers if not h[0].startswith("x-dlq-")),
        *location_headers(reason, record.topic, record.partition, record.offset),
    ]
    if detail is not None:
        headers.append(("x-dlq-detail", detail[:1000].encode("utf-8", "replace")))
    headers.extend(extra)
    key, value = record.key, record.value
    size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
    letter = OutRecord(topic, key, value, headers)
    return without_value(letter) if size > DEAD_LETTER_VALUE_LIMIT else letter


def without_value(letter: OutRecord) -> OutRecord:
    """A dead letter too large to publish (it would fail the batch again on every replay,
    a poison pill): the evidence without the bulk. The original stays on its topic at
    the ``x-dlq-*`` coordinates; ``x-dlq-value-dropped`` is its size. Empty rather than
    None: a record needs a key or a value, and None would be a tombstone."""
    dropped = ("x-dlq-value-dropped", str(len(letter.value or b"")).encode())
    return OutRecord(letter.topic, letter.key, b"", [*letter.headers, dropped], letter.partition)


def location_headers(
    reason: str, topic: str | None, partition: int | None, offset: int | None
) -> Headers:
    """``x-dlq-reason`` and where the record was read (empty when not known)."""
    return [
        ("x-dlq-reason", reason.encode()),
        ("x-dlq-topic", (topic or "").encode()),
        ("x-dlq-partition", b"" if partition is None else str(partition).encode()),
        ("x-dlq-offset", b"" if offset is None else str(offset).encode()),
    ]


def error_digest(exc: BaseException) -> str:
    """12 hex digits from the exception type and the code it passed through, not its
    message: the same bug hit by different records has the same digest."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = "|".join(f"{os.path.basename(f.filename)}:{f.name}:{f.lineno}" for f in frames)
    text = f"{type(exc).__module__}.{type(exc).__qualname__}|{where}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def error_details(exc: BaseException) -> Headers:
    """What a processing-error dead letter says of ``exc``: its type, digest and message."""
    return [
        ("x-dlq-exception", type(exc).__qualname__.encode()),
        ("x-dlq-digest", error_digest(exc).encode()),
        ("x-dlq-error", f"{type(exc).__name__}: {exc}"[:500].encode("utf-8", "replace")),
    ]


def describe(exc: BaseException) -> str:
    """``KeyError 'x' (digest 0123456789ab)``: what a log line or x-dlq-detail says."""
    return f"{type(exc).__name__} {str(exc)[:200]!r} (digest {error_digest(exc)})"
