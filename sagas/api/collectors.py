"""Metrics read from the coordinator's consumer and table when Prometheus scrapes.

* ``saga_consumer_lag{topic,partition}``: records on the partition not yet
  committed by this replica (highwater - committed offset), for every input
  partition it is assigned (`sagas.kafka.consumer_lag`, shared with the
  participants' ``participant_consumer_lag``). Partitions are bounded by the
  topic's partition count; no saga id is ever a label.
* ``saga_states{saga,status}``: sagas in this replica's partitions of the
  table, by current status. Unlike counters it says how many are parked in
  ``failed`` right now, and it follows partitions when they move between
  replicas. Summed over replicas it is the whole picture.
* ``saga_needs_operator{saga}``: sagas in this replica's partitions that a
  record raised on (dead-lettered as ``processing-error``) and that an operator
  can still act on (running, compensating or failed): the mark
  (`SagaState.attention`) is cleared by an operator command that applies.
* ``saga_waiting_steps{saga,step}``, ``saga_waiting_oldest_seconds{saga,step}`` and
  ``saga_waiting_overdue{saga,step}``: steps that wait for a signal (``awaits:``, a
  person's approval) right now, how long the oldest has waited, and how many are
  past their deadline (the deadline timer has not been applied: the coordinator
  lags or is down), from the same census.

The table is scanned in slices by a background timer (never in the scrape),
so a large table does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from events.partitioning import partition_for
from sagas.api.replica import Replica
from sagas.kafka.consumer_lag import LagRow, lag_family
from sagas.state import SagaStatus, StepStatus
from sagas.table_codec import census_entry, saga_state

log = logging.getLogger("sagas.api")

#: Keys scanned between two yields to the event loop.
SLICE = 2000
#: a marked saga in these states can still be aborted, retried, skipped or resolved
_ACTIONABLE = frozenset({SagaStatus.RUNNING, SagaStatus.COMPENSATING, SagaStatus.FAILED})


class TableCensus:
    """Counts of sagas by (name, status) in the partitions this replica owns."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.counts: Counter[tuple[str, str]] = Counter()
        self.marked: Counter[str] = Counter()
        self.names: set[str] = {d.name for d in replica.registry}
        self.scanned_at: float | None = None
        #: (saga, step) -> [waiting, oldest start, overdue]
        self.waiting: dict[tuple[str, str], tuple[int, float, int]] = {}
        self.awaiting = {
            (d.name, d.version): d for d in replica.registry if any(s.awaits for s in d.steps)
        }

    def _count_waiting(
        self, raw: bytes, now: float, waiting: dict[tuple[str, str], tuple[int, float, int]]
    ) -> None:
        state = saga_state(raw)
        definition = self.awaiting.get((state.name, state.version)) if state else None
        if state is None or definition is None:
            return
        for step, st in zip(definition.steps, state.steps, strict=True):
            if step.awaits is None or st.status is not StepStatus.RUNNING:
                continue
            since = st.started_at or now
            count, oldest, overdue = waiting.get((state.name, step.name), (0, now, 0))
            late = since + step.awaits.deadline < now
            waiting[(state.name, step.name)] = (count + 1, min(oldest, since), overdue + late)

    async def scan(self, owned: set[int]) -> None:
        data = self.replica.stored_values()
        partitions = self.replica.partitions
        # murmur2 is pure Python: skip it when every partition is ours (one replica)
        check = not owned.issuperset(range(partitions))
        keys = list(data.keys())
        counts: Counter[tuple[str, str]] = Counter()
        marked: Counter[str] = Counter()
        waiting: dict[tuple[str, str], tuple[int, float, int]] = {}
        awaiting = {name for name, _ in self.awaiting}
        now = time.time()
        for n, key in enumerate(keys, 1):
            if n % SLICE == 0:
                await asyncio.sleep(0)
            raw = data.get(key)
            if raw is None or (check and partition_for(key, partitions) not in owned):
                continue
            try:
                seen = census_entry(raw)
            except Exception:  # noqa: BLE001 - a value we cannot read is not a saga to count
                continue
            if seen is not None:  # held events are not a saga yet
                name, status, attention = seen
                counts[name, status] += 1
                if attention and status in _ACTIONABLE:
                    marked[name] += 1
                if status == SagaStatus.RUNNING and name in awaiting:
                    self._count_waiting(raw, now, waiting)
        self.counts, self.marked = counts, marked
        self.waiting = {
            (name, step.name): waiting.get((name, step.name), (0, now, 0))
            for name, step in self._awaits_steps()
        }
        self.names |= {name for name, _ in counts}
        self.scanned_at = time.time()

    def _awaits_steps(self) -> Iterator[tuple[str, Any]]:
        # Every waiting step of a loaded definition, zeros included, so an alert resolves.
        for (name, _), definition in sorted(self.awaiting.items()):
            for step in definition.steps:
                if step.awaits is not None:
                    yield name, step

    def samples(self) -> Iterator[tuple[str, str, int]]:
        # Every (saga, status) pair of a known saga, zeros included, so a series
        # that drops to 0 reads 0 and alerts see it resolve.
        for name in sorted(self.names):
            for status in SagaStatus:
                yield name, status.value, self.counts.get((name, status.value), 0)


WAITING_METRICS = {
    "saga_waiting_steps": "Steps waiting for a signal (awaits:, e.g. an approval) right now.",
    "saga_waiting_oldest_seconds": "How long the oldest waiting step has waited.",
    "saga_waiting_overdue": "Waiting steps past their deadline (the deadline not yet applied).",
}


class CoordinatorCollector(Collector):
    """The scrape-time metrics of one replica (see the module docstring)."""

    def __init__(self, replica: Replica, census: TableCensus) -> None:
        self.replica = replica
        self.census = census

    def describe(self) -> Iterable[Any]:
        yield GaugeMetricFamily("saga_consumer_lag", "", labels=["topic", "partition"])
        yield GaugeMetricFamily("saga_states", "", labels=["saga", "status"])
        yield GaugeMetricFamily("saga_needs_operator", "", labels=["saga"])
        for name in WAITING_METRICS:
            yield GaugeMetricFamily(name, "", labels=["saga", "step"])

    def collect(self) -> Iterable[Any]:
        yield lag_family(
            "saga_consumer_lag",
            "Records in an input partition not yet committed by this replica.",
            self.lag(),
        )
        states = GaugeMetricFamily(
            "saga_states",
            "Sagas in this replica's table partitions by current status.",
            labels=["saga", "status"],
        )
        if self.census.scanned_at is not None:
            for name, status, count in self.census.samples():
                states.add_metric([name, status], count)
        yield states
        marked = GaugeMetricFamily(
            "saga_needs_operator",
            "Sagas in this replica's table partitions that a record raised on "
            "(processing-error), not yet acted on by an operator.",
            labels=["saga"],
        )
        if self.census.scanned_at is not None:
            for name in sorted(self.census.names):
                marked.add_metric([name], self.census.marked.get(name, 0))
        yield marked
        yield from self.waiting_families()

    def waiting_families(self) -> Iterator[GaugeMetricFamily]:
        families = [
            GaugeMetricFamily(name, help_, labels=["saga", "step"])
            for name, help_ in WAITING_METRICS.items()
        ]
        if self.census.scanned_at is not None:
            at = self.census.scanned_at
            for (saga, step), (count, oldest, overdue) in sorted(self.census.waiting.items()):
                families[0].add_metric([saga, step], count)
                families[1].add_metric([saga, step], max(0.0, at - oldest) if count else 0.0)
                families[2].add_metric([saga, step], overdue)
        yield from families

    def lag(self) -> list[LagRow]:
        return self.replica.input_lag()
