"""The scrape-time gauges: sagas per status in the partitions a replica owns, and consumer
lag per input partition, from a stand-in coordinator (no Kafka)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition as TP
from prometheus_client import CollectorRegistry, generate_latest

from events.partitioning import partition_for
from sagas.api.collectors import CoordinatorCollector, TableCensus
from sagas.kafka.consumer_lag import partition_lag
from sagas.state import SagaState, SagaStatus, StepState
from sagas.table_codec import EarlyEvents, encode_value
from tests.unit.saga_fixtures import three_step

PARTITIONS = 8


def state(saga_id: str, status: SagaStatus, attention: str | None = None) -> bytes:
    return encode_value(
        SagaState(
            saga_id=saga_id,
            name="order",
            version=1,
            status=status,
            attention=attention,
            steps=[StepState()],
            started_at=1.0,
            updated_at=2.0,
        )
    )


def coordinator(data: dict[bytes, bytes], consumer: Any = None, committed: Any = None) -> Any:
    """A stand-in `sagas.api.replica.Replica` reading ``consumer`` like the coordinator."""
    topics = {"orders", "saga.control"}
    return SimpleNamespace(
        stored_values=lambda: data,
        partitions=PARTITIONS,
        registry=[three_step()],
        input_lag=lambda: partition_lag(consumer, topics, committed or {}),
    )


def test_census_counts_only_owned_partitions_and_reports_zeros() -> None:
    data: dict[bytes, bytes] = {}
    for n in range(40):
        sid = f"s-{n}"
        data[sid.encode()] = state(sid, SagaStatus.FAILED if n % 4 == 0 else SagaStatus.RUNNING)
    data[b"early"] = encode_value(EarlyEvents(expires=1.0))
    owned = {0, 1, 2, 3}
    mine = [k for k in data if k != b"early" and partition_for(k, PARTITIONS) in owned]
    census = TableCensus(coordinator(data))
    asyncio.run(census.scan(owned))
    samples = {(name, status): count for name, status, count in census.samples()}
    failed = sum(1 for k in mine if int(k[2:]) % 4 == 0)
    assert samples[("order", "failed")] == failed
    assert samples[("order", "running")] == len(mine) - failed
    assert samples[("order", "completed")] == 0, "every status of a known saga is reported"
    assert sum(samples.values()) == len(mine)


def test_collector_exports_lag_per_input_partition_and_the_census() -> None:
    committed = {TP("orders", 0): 7}
    consumer = SimpleNamespace(
        assignment=lambda: {TP("orders", 0), TP("orders", 1), TP("sagas-changelog", 0)},
        highwater=lambda tp: {0: 10, 1: 4}.get(tp.partition, 99),
    )
    c = coordinator({b"s-1": state("s-1", SagaStatus.FAILED)}, consumer, committed)
    census = TableCensus(c)
    asyncio.run(census.scan(set(range(PARTITIONS))))
    registry = CollectorRegistry()
    registry.register(CoordinatorCollector(c, census))
    text = generate_latest(registry).decode()
    assert 'saga_consumer_lag{partition="0",topic="orders"} 3.0' in text
    assert 'saga_consumer_lag{partition="1",topic="orders"} 4.0' in text
    assert "sagas-changelog" not in text, "only the coordinator's input topics"
    assert 'saga_states{saga="order",status="failed"} 1.0' in text


def test_sagas_a_record_raised_on_are_counted_while_an_operator_can_act_on_them() -> None:
    why = "processing-error: KeyError 'x' \"quoted\" (digest 0123456789ab)"
    data = {
        b"s-1": state("s-1", SagaStatus.RUNNING, why),
        b"s-2": state("s-2", SagaStatus.FAILED, why),
        b"s-3": state("s-3", SagaStatus.COMPLETED, why),  # finished: its view still says so
        b"s-4": state("s-4", SagaStatus.RUNNING),
    }
    c = coordinator(data, SimpleNamespace(assignment=lambda: set()))
    census = TableCensus(c)
    asyncio.run(census.scan(set(range(PARTITIONS))))
    registry = CollectorRegistry()
    registry.register(CoordinatorCollector(c, census))
    text = generate_latest(registry).decode()
    assert 'saga_needs_operator{saga="order"} 2.0' in text
    assert 'saga_states{saga="order",status="running"} 2.0' in text


def test_collector_is_quiet_before_the_consumer_starts() -> None:
    def not_started() -> Any:
        raise RuntimeError("consumer not started")

    c = coordinator({}, SimpleNamespace(assignment=not_started))
    registry = CollectorRegistry()
    registry.register(CoordinatorCollector(c, TableCensus(c)))
    text = generate_latest(registry).decode()
    assert "# TYPE saga_consumer_lag gauge" in text and "saga_consumer_lag{" not in text


def test_census_counts_steps_waiting_for_a_person_their_age_and_the_overdue() -> None:
    """Issue 20: approvals waiting and their age, and those past their deadline."""
    import time

    from sagas.testing import SagaTestKit
    from services import definitions
    from tests.unit.test_waiting_steps import claim_saga

    definition = claim_saga()
    kit = SagaTestKit(definition, start_time=time.time() - 50 * 3600)
    kit.on("reserve.do").reply("reserve.done")
    kit.start("old", {})  # waits since 50 h ago: past its 48 h deadline (never applied here)
    kit.now = time.time() - 3600
    kit.start("new", {})
    kit.start("done", {})
    kit.publish("done", "claim.rejected")
    data = {sid.encode(): encode_value(s) for sid, s in kit.states.items()}
    replica = SimpleNamespace(
        stored_values=lambda: data,
        partitions=PARTITIONS,
        registry=[definition, definitions.load("order_orchestrated")],
        input_lag=lambda: [],
    )
    census = TableCensus(replica)  # type: ignore[arg-type]
    asyncio.run(census.scan(set(range(PARTITIONS))))
    registry = CollectorRegistry()
    registry.register(CoordinatorCollector(replica, census))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'saga_waiting_steps{saga="claim",step="approve"} 2.0' in text
    assert 'saga_waiting_overdue{saga="claim",step="approve"} 1.0' in text
    oldest = next(
        line for line in text.splitlines() if line.startswith("saga_waiting_oldest_seconds{")
    )
    assert 49 * 3600 < float(oldest.split()[-1]) < 51 * 3600
    assert "order" not in "".join(line for line in text.splitlines() if "waiting" in line)
