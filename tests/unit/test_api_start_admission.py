"""POST /sagas/{name} past admission control's bound (issue 19): API starts go through the
control topic, which is never paused, so at the bound the API refuses them with 429 and
Retry-After and publishes nothing; a start of a saga that already exists still answers
as before. Served by the real aiohttp app over a stand-in replica (no Kafka)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from sagas import admission
from sagas.admission import AdmissionLimits
from sagas.api import install_api
from sagas.testing import SagaTestKit
from tests.unit.test_api_signals import StandIn
from tests.unit.test_waiting_steps import claim_saga

FULL = "1000 sagas in flight on this replica, at its bound SAGAS_MAX_IN_FLIGHT=1000"


async def start(replica: StandIn, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
    api = install_api(replica, CollectorRegistry(), token="s3cret")  # type: ignore[arg-type]
    headers = {"Authorization": "Bearer s3cret"}
    async with TestClient(TestServer(api.application())) as client:
        api.http = client.session
        response = await client.post(path, data=orjson.dumps(body), headers=headers)
        return response.status, dict(response.headers), await response.json()


async def test_a_start_at_the_bound_is_refused_with_retry_after_and_nothing_published() -> None:
    kit = SagaTestKit(claim_saga())
    replica = StandIn(kit)
    replica.refusal = FULL
    name = kit.definition.name
    status, headers, answer = await start(replica, f"/sagas/{name}?id=claim-9", {"amount": 5})
    assert status == 429, answer
    assert headers["Retry-After"] == "1"
    assert answer["error"] == "overloaded"
    assert FULL in answer["detail"] and "nothing was published" in answer["detail"]
    assert replica.published == []

    replica.refusal = None  # in flight fell under the bound: the same request goes through
    status, _, answer = await start(replica, f"/sagas/{name}?id=claim-9", {"amount": 5})
    assert status == 202, answer
    assert [e.sagaid for e in replica.published] == ["claim-9"]


async def test_starting_an_existing_saga_again_answers_at_the_bound_too() -> None:
    kit = SagaTestKit(claim_saga())
    kit.start("claim-1", {"amount": 500})
    replica = StandIn(kit)
    replica.refusal = FULL
    name = kit.definition.name
    status, _, answer = await start(replica, f"/sagas/{name}?id=claim-1", {"amount": 500})
    assert status == 200 and answer["existing"] is True, answer
    assert replica.published == []


def test_start_refusal_follows_the_bound() -> None:
    bound = AdmissionLimits.of(1000)
    assert admission.start_refusal(bound, 999) is None
    assert admission.start_refusal(bound, 1000) == FULL
    assert admission.start_refusal(bound, 1500) is not None
    assert admission.start_refusal(AdmissionLimits.of(0), 10**6) is None  # no bound


async def test_a_coordinator_refuses_api_starts_once_its_own_sagas_reach_the_bound(
    tmp_path: Any,
) -> None:
    """The wiring: what the API asks (`Coordinator.check_start`) follows the sagas the
    coordinator's batches took into flight, not a flag set by hand."""
    from bench.loadgen import Plan, start_record
    from bench.workload import write_bench_definition
    from events.codec import CONTENT_TYPE_HEADER as HEADER
    from events.records import InRecord
    from sagas.coordinator import Coordinator
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.settings import CoordinatorSettings

    definitions = write_bench_definition("adm.", tmp_path, timeout=30.0)
    registry = DefinitionRegistry(load_definitions(definitions))
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", topic_prefix="adm.", partitions=1)
    coordinator = Coordinator(registry, kafka=kafka, settings=CoordinatorSettings(max_in_flight=3))
    coordinator.owned = frozenset({0})

    def persist(outgoing: Any, writes: Any) -> Any:
        import asyncio

        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    coordinator.persister.persist = persist  # type: ignore[method-assign]
    plan = Plan(
        bootstrap="", prefix="adm.", workload="bench", start_topic=coordinator.topics.control,
        lifecycle_topic=coordinator.topics.lifecycle, rate=1.0, count=3, fail_every=10,
    )  # fmt: skip

    def starts(first: int, count: int) -> list[InRecord]:
        records = []
        for i in range(first, first + count):
            sid = f"s-{i}"
            value = start_record(plan, sid, i)
            records.append(InRecord(plan.start_topic, 0, i, sid.encode(), value, [HEADER]))
        return records

    await coordinator.process(starts(0, 2), 1.0)
    assert coordinator.check_start() is None  # 2 in flight, bound 3
    await coordinator.process(starts(2, 1), 2.0)
    refused = "saga_api_starts_refused_total"
    assert coordinator.metrics_registry.get_sample_value(refused) == 0
    why = coordinator.check_start()
    assert why is not None and "3 sagas in flight" in why and "SAGAS_MAX_IN_FLIGHT=3" in why
    assert coordinator.metrics_registry.get_sample_value(refused) == 1
