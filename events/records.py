"""Records as they cross Kafka, typed: one read from a topic, one to be written to one.

The consumer loops turn what aiokafka hands over into `InRecord`s; pure steps
(the coordinator's batch step, a participant's handler) return `OutRecord`s;
`sagas.kafka.producer_batches.send_grouped` writes those. No Kafka here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Kafka record headers, in order (names may repeat)
Headers = list[tuple[str, bytes]]

# Not frozen, though nothing changes a record once built: a frozen dataclass sets each
# field through object.__setattr__ (4x the cost of a plain slot), and the coordinator
# builds about 25 of these per saga (issue 19).


@dataclass(slots=True)
class InRecord:
    """A record as consumed: where it was read, and what it holds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def of(cls, record: Any) -> InRecord:
        """From an aiokafka ``ConsumerRecord`` (or anything with the same attributes)."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            header_list(record.headers),
        )


@dataclass(slots=True)
class OutRecord:
    """A record to produce; ``partition`` None: the key's partition (murmur2)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None


def header_list(headers: Any) -> Headers:
    """Headers as a list of (name, bytes); anything that is not a header sequence: none."""
    if not headers:
        return []
    try:
        return list(headers.items() if isinstance(headers, dict) else headers)
    except Exception:  # noqa: BLE001 - not a header sequence: keep none
        return []
