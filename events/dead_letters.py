"""Dead-letter headers for a record that made our own code raise (``processing-error``).

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

#: ``x-dlq-reason`` of a record whose processing raised an unexpected exception
PROCESSING_ERROR = "processing-error"


def error_digest(exc: BaseException) -> str:
    """12 hex digits from the exception type and the code it passed through, not its
    message: the same bug hit by different records has the same digest."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = "|".join(f"{os.path.basename(f.filename)}:{f.name}:{f.lineno}" for f in frames)
    text = f"{type(exc).__module__}.{type(exc).__qualname__}|{where}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def processing_error_headers(
    topic: str, partition: int, offset: int, exc: BaseException
) -> list[tuple[str, bytes]]:
    """The ``x-dlq-*`` headers of a record whose processing raised ``exc``."""
    return [
        ("x-dlq-reason", PROCESSING_ERROR.encode()),
        ("x-dlq-topic", topic.encode()),
        ("x-dlq-partition", str(partition).encode()),
        ("x-dlq-offset", str(offset).encode()),
        ("x-dlq-exception", type(exc).__qualname__.encode()),
        ("x-dlq-digest", error_digest(exc).encode()),
        ("x-dlq-error", f"{type(exc).__name__}: {exc}"[:500].encode("utf-8", "replace")),
    ]


def describe(exc: BaseException) -> str:
    """``KeyError 'x' (digest 0123456789ab)``: what a log line or x-dlq-detail says."""
    return f"{type(exc).__name__} {str(exc)[:200]!r} (digest {error_digest(exc)})"
