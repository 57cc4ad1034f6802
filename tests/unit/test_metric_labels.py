"""Every metric the coordinator and the participants export, as a scrape shows it: the
names and labels of DESIGN.md ("Metrics"), only low-cardinality labels (never a saga id,
order id or customer), and saga duration buckets from milliseconds to minutes.

The metrics are built against a fresh registry, as the processes build theirs, with one
series of each (and the scrape-time collectors fed by stand-in consumers), then read back
from the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from sagas.api.collectors import CoordinatorCollector, TableCensus
from sagas.kafka.consumer_lag import partition_lag
from sagas.metrics import CoordinatorMetrics
from sagas.participants.participant_io import ParticipantMetrics
from tests.unit.saga_fixtures import three_step
from tests.unit.test_waiting_steps import claim_saga

#: DESIGN.md "Metrics", as Prometheus stores the names; consumer lag "per topic/partition".
DESIGN: dict[str, set[str]] = {
    "saga_started_total": {"saga"},
    "saga_finished_total": {"saga", "outcome"},
    "saga_in_flight": {"saga"},
    "saga_duration_seconds": {"saga", "outcome"},
    "saga_step_duration_seconds": {"saga", "step"},
    "saga_step_retries_total": {"saga", "step"},
    "saga_timeouts_total": {"saga", "step"},
    "saga_compensations_total": {"saga", "step", "result"},
    "saga_dead_letters_total": {"reason"},
    "saga_messages_total": {"topic", "direction"},
    "participant_commands_total": {"service", "type", "result"},
    "participant_command_duration_seconds": {"service", "type"},
    "saga_consumer_lag": {"topic", "partition"},
    "participant_consumer_lag": {"service", "topic", "partition"},
}
#: Labels whose values are bounded by the definitions, the services and the topics.
ALLOWED = {
    "saga",
    "step",
    "outcome",
    "result",
    "reason",
    "status",
    "topic",
    "partition",
    "direction",
    "service",
    "type",
    "action",
}
#: Per-saga or per-customer values: one series each would grow without bound.
UNBOUNDED = {"saga_id", "sagaid", "id", "order_id", "customer", "customer_id", "payment_id", "key"}
#: Labels Prometheus itself puts on histogram samples.
BUILT_IN = {"le"}


def scrape() -> dict[str, dict[str, Any]]:
    """name -> {"labels": label names, "buckets": histogram bounds} of one scrape."""
    registry = CollectorRegistry()
    metrics = [CoordinatorMetrics.create(registry), ParticipantMetrics.create(registry)]
    for holder in metrics:
        for f in dataclasses.fields(holder):
            metric = getattr(holder, f.name)
            if isinstance(metric, MetricWrapperBase) and metric._labelnames:
                # One series, so the labels show; the wrapper keeps its label names privately
                # (an unlabelled one, such as saga_batch_records, has its series already).
                metric.labels(*("x" for _ in metric._labelnames))
    consumer = SimpleNamespace(
        assignment=lambda: {TopicPartition("orders", 0), TopicPartition("orders", 1)},
        highwater=lambda tp: 5,
    )
    committed = {TopicPartition("orders", 0): 2}
    coordinator = SimpleNamespace(  # a stand-in `sagas.api.replica.Replica`
        stored_values=lambda: {},
        partitions=8,
        # a saga with a step that waits for a person: the waiting-step gauges have series
        registry=[three_step(), claim_saga()],
        input_lag=lambda: partition_lag(consumer, {"orders"}, committed),
    )
    census = TableCensus(coordinator)  # type: ignore[arg-type]
    asyncio.run(census.scan(set(range(8))))
    registry.register(CoordinatorCollector(coordinator, census))  # type: ignore[arg-type]
    metrics[1].lag.watch("payment", lambda: partition_lag(consumer, {"orders"}, {}))

    found: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        name = family.name + ("_total" if family.type == "counter" else "")
        labels: set[str] = set()
        buckets: list[float] = []
        for sample in family.samples:
            labels |= set(sample.labels) - BUILT_IN
            if sample.name.endswith("_bucket"):
                buckets.append(float(sample.labels["le"]))
        assert family.samples, f"{name}: no series in the scrape, its labels cannot be checked"
        found[name] = {"labels": labels, "buckets": sorted(set(buckets))}
    return found


@pytest.fixture(scope="module")
def exported() -> dict[str, dict[str, Any]]:
    return scrape()


def test_every_design_metric_is_exported_with_the_design_labels(
    exported: dict[str, dict[str, Any]],
) -> None:
    missing = sorted(set(DESIGN) - set(exported))
    assert not missing, f"DESIGN.md metrics not exported: {missing}"
    for name, labels in DESIGN.items():
        assert exported[name]["labels"] == labels, name


def test_every_label_is_low_cardinality(exported: dict[str, dict[str, Any]]) -> None:
    assert len(exported) >= len(DESIGN)
    for name, metric in exported.items():
        assert not metric["labels"] & UNBOUNDED, f"{name} has a per-saga label"
        assert metric["labels"] <= ALLOWED, f"{name}: labels {metric['labels'] - ALLOWED}"


def test_saga_duration_buckets_reach_from_milliseconds_to_minutes(
    exported: dict[str, dict[str, Any]],
) -> None:
    bounds = [b for b in exported["saga_duration_seconds"]["buckets"] if b != float("inf")]
    assert bounds[0] <= 0.010, f"smallest bucket {bounds[0]} s: sub-10 ms sagas all look alike"
    assert bounds[-1] >= 60, f"largest bucket {bounds[-1]} s: minute-long sagas all look alike"
    steps = [b for b in exported["saga_step_duration_seconds"]["buckets"] if b != float("inf")]
    assert steps[0] <= 0.010 and steps[-1] >= 30
