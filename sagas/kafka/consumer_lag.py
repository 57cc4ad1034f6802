"""Consumer lag read from aiokafka consumers when Prometheus scrapes.

The lag of an input partition is its highwater (the end of the log, as of the
consumer's last fetch) minus the offset its reader last committed: records
that a restart would have to read again, or that are not read yet. aiokafka
exposes the highwater without a request (`AIOKafkaConsumer.highwater`), so a
scrape costs nothing; a partition not fetched yet has none and is left out.
A paused partition is not fetched, so its highwater stops where the pause found
it: a caller that pauses partitions reads their log ends itself (``ListOffsets``,
`sagas.admission_gate.AdmissionGate.refresh_log_ends`) and passes them as ``ends``.

Shared by the coordinator (``saga_consumer_lag{topic,partition}``, in
`sagas.api.collectors`) and the participants
(``participant_consumer_lag{service,topic,partition}``, in
`sagas.participants.participant_io`). Partitions are bounded by the topics' partition
counts; no saga id is ever a label.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from aiokafka import TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: (topic, partition, records behind)
LagRow = tuple[str, int, int]


def unread(consumer: Any, tp: TopicPartition) -> int | None:
    """Records of ``tp`` past what ``consumer`` has handed out (its position: past the
    records `getmany` returned and the transaction markers after them), up to the end its
    fetches last saw; None while either is unknown.

    aiokafka's ``position()`` is a coroutine because it may have to look the offset up;
    this reads the position it holds, without I/O, and says None where it would wait.
    """
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)
        if state is None or not state.has_valid_position:
            return None
        highwater = consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - not started, between assignments, or unassigned
        return None
    return None if highwater is None else max(0, int(highwater) - int(state.position))


def partition_lag(
    consumer: Any,
    topics: Collection[str],
    committed: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int] | None = None,
) -> list[LagRow]:
    """Lag of every partition of ``topics`` assigned to ``consumer``; a partition with no
    commit yet counts from offset 0. Empty while the consumer is not started or assigned.
    ``ends``: log ends read otherwise (of paused partitions); the later of the two counts."""
    if consumer is None:
        return []
    try:
        assignment = consumer.assignment()
    except Exception:  # noqa: BLE001 - not started, or between assignments
        return []
    out = []
    for tp in sorted(assignment):
        if tp.topic not in topics:
            continue
        highwater = consumer.highwater(tp)
        known = ends.get(tp) if ends else None
        if known is not None and (highwater is None or known > highwater):
            highwater = known
        if highwater is None:
            continue
        done = committed.get(tp)
        out.append((tp.topic, tp.partition, max(0, int(highwater) - int(done or 0))))
    return out


def lag_family(
    name: str, documentation: str, rows: Iterable[tuple[Any, ...]], label: str | None = None
) -> GaugeMetricFamily:
    """A gauge ``name{[label,]topic,partition}``; rows carry the label's value first when
    ``label`` is given."""
    labels = [label] if label else []
    family = GaugeMetricFamily(name, documentation, labels=[*labels, "topic", "partition"])
    for row in rows:
        *values, topic, partition, lag = row
        family.add_metric([*map(str, values), topic, str(partition)], lag)
    return family


class ConsumerLagCollector(Collector):
    """``name{<label>,topic,partition}`` for every consumer watched in one registry (a
    process may run several participants; each is one value of ``label``)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._sources: dict[str, Callable[[], Iterable[LagRow]]] = {}

    def watch(self, value: str, rows: Callable[[], Iterable[LagRow]]) -> None:
        """Export ``rows()`` under ``label=value`` at every scrape, until `forget`."""
        self._sources[value] = rows

    def forget(self, value: str) -> None:
        self._sources.pop(value, None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield lag_family(self.name, self.documentation, (), self.label)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = [
            (value, *row) for value, source in sorted(self._sources.items()) for row in source()
        ]
        yield lag_family(self.name, self.documentation, rows, self.label)
