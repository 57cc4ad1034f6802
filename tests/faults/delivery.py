"""Exactly-once checks: no command id handed to a participant twice, no lifecycle event twice.

Counts raw records, not distinct ones: every record of the command topics and
of ``saga.lifecycle`` is read from the beginning with a ``read_committed``
consumer (what a participant or a lifecycle reader sees in exactly_once), and
an event id found in two records is a duplicate delivery. In at_least_once a
crash legitimately re-sends a batch with the same ids (participants drop them),
so the check is meant for systems run with ``SAGAS_PROCESSING_GUARANTEE=exactly_once``.

    report = await duplicate_deliveries(kafka, commands=[...], lifecycle=topics.lifecycle)
    assert report.ok, report.describe()
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from events.codec import decode
from events.errors import DecodeError
from sagas.kafka.admin import partition_counts
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.log_reader import read_to_end

__all__ = ["DeliveryReport", "duplicate_deliveries", "raw_event_ids"]


@dataclass
class DeliveryReport:
    """Event ids seen more than once, per topic, and how many records were read."""

    records: Counter[str] = field(default_factory=Counter)
    duplicates: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.duplicates.values())

    def describe(self, limit: int = 10) -> str:
        read = ", ".join(f"{t}: {n} records" for t, n in sorted(self.records.items()))
        if self.ok:
            return f"no event id delivered twice ({read})"
        lines = [f"event ids delivered more than once ({read}):"]
        for topic, ids in sorted(self.duplicates.items()):
            shown = sorted(ids.items())[:limit]
            lines.append(
                f"  {topic}: {len(ids)} ids, e.g. " + ", ".join(f"{i} x{n}" for i, n in shown)
            )
        return "\n".join(lines)


async def raw_event_ids(
    kafka: KafkaSettings, topic: str, *, isolation: str = "read_committed"
) -> Counter[str]:
    """How many records of ``topic`` carry each CloudEvents id (undecodable ones skipped)."""
    counts = await partition_counts(kafka, [topic])
    tps = [TopicPartition(topic, p) for p in range(counts[topic])]
    seen: Counter[str] = Counter()
    async for batch in read_to_end(kafka, tps, isolation=isolation):
        for record in batch:
            if record.value is None:
                continue
            try:
                event = decode(record.value, record.headers)
            except DecodeError:
                continue
            seen[event.id] += 1
    return seen


async def duplicate_deliveries(
    kafka: KafkaSettings,
    *,
    commands: Iterable[str],
    lifecycle: str,
    isolation: str = "read_committed",
) -> DeliveryReport:
    """Read ``commands`` topics and the ``lifecycle`` topic raw; ids found twice."""
    report = DeliveryReport()
    for topic in [*sorted(set(commands)), lifecycle]:
        ids = await raw_event_ids(kafka, topic, isolation=isolation)
        report.records[topic] = sum(ids.values())
        report.duplicates[topic] = {i: n for i, n in ids.items() if n > 1}
    return report
