"""`saga_batch_records`: how many records each batch the coordinator decided held.

At one or two records per batch a replica's CPU goes to Kafka requests (a fetch and two
produce requests per batch), not to sagas (README, "Requests, not records"); the
histogram is how an operator, and the benchmark, see which regime a replica is in."""

from __future__ import annotations

from pathlib import Path

from events.records import InRecord
from tests.unit.unstarted_coordinator import unstarted


async def test_each_batch_decided_is_observed_with_its_record_count(tmp_path: Path) -> None:
    system = unstarted(tmp_path)
    coordinator, starts = system.coordinator, system.starts
    # a record that is not a saga's still came in a batch: counted too
    junk = InRecord(coordinator.topics.control, 0, 9, b"x", b"not json", [])
    await coordinator.process(starts(0, 2), 1.0)
    await coordinator.process([*starts(2, 1), junk], 2.0)
    await coordinator.process(starts(3, 1), 3.0)
    await coordinator.process([], 4.0)  # nothing fetched: no batch

    sample = system.sample
    assert sample("saga_batch_records_count") == 3
    assert sample("saga_batch_records_sum") == 5
    assert sample("saga_batch_records_bucket", {"le": "1.0"}) == 1
    assert sample("saga_batch_records_bucket", {"le": "2.0"}) == 3
    assert sample("saga_batch_records_bucket", {"le": "+Inf"}) == 3


def test_the_bench_reads_batches_and_their_records_off_the_histogram() -> None:
    """`bench.run` divides these by the sagas of a point: batches per saga, records per batch."""
    from prometheus_client import CollectorRegistry, generate_latest

    from bench.coordinator_samples import BATCH_SAMPLES, batch_figures, samples
    from sagas.metrics import CoordinatorMetrics

    registry = CollectorRegistry()
    metrics = CoordinatorMetrics.create(registry)
    assert samples(generate_latest(registry).decode(), BATCH_SAMPLES) == {
        "batches": 0.0,
        "records": 0.0,
    }
    metrics.batch_records.observe(2)
    metrics.batch_records.observe(30)
    page = generate_latest(registry).decode()
    assert samples(page, BATCH_SAMPLES) == {"batches": 2.0, "records": 32.0}
    after = samples(page, BATCH_SAMPLES)
    assert batch_figures({"batches": 0.0, "records": 0.0}, after, terminal=4) == {
        "batches_per_saga": 0.5,
        "records_per_batch": 16.0,
    }
    assert batch_figures(None, after, terminal=4) == {
        "batches_per_saga": None,
        "records_per_batch": None,
    }
