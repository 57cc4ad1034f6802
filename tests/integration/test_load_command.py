"""`sagas load` (docker compose's load profile) places orders that start order sagas.

The command runs as its own process, configured by the environment only, as in
its container: ``KAFKA_BOOTSTRAP_SERVERS`` and ``SERVICES_TOPIC_PREFIX``. A real
coordinator with the shipped orchestrated order saga reads the trigger topic;
each placed order must be on that topic and start a saga. No service runs: that
the sagas start is what is checked, not how they end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sagas.kafka.embedded_broker import EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings
from tests.support.kafka_peers import eventually
from tests.support.order_saga import OrderSaga, Recorder

pytestmark = pytest.mark.integration

COUNT = 5


async def test_load_places_orders_that_start_sagas(
    kafka_settings: KafkaSettings,
    kafka_bootstrap: str,
    embedded_broker: EmbeddedBroker | None,
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    system = OrderSaga(
        kafka_settings,
        unique_prefix,
        tmp_path,
        env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        embedded=embedded_broker is not None,
    )
    orders_topic, lifecycle_topic = system.topics.orders, system.engine.lifecycle
    await system.create_topics()
    try:
        coordinator = system.start_coordinator()
        async with Recorder(system.kafka, orders_topic, lifecycle_topic) as seen:
            load = system.start(
                "load",
                [
                    *system.sagas_command(),
                    "load",
                    "--count",
                    str(COUNT),
                    "--rate",
                    "50",
                    "--seed",
                    "7",
                ],  # fmt: skip
                {"SERVICES_TOPIC_PREFIX": unique_prefix},
            )
            await eventually(
                lambda: not load.alive(), 60, lambda: f"sagas load to finish:\n{system.logs()}"
            )
            assert load.proc is not None and load.proc.returncode == 0, system.logs()
            assert f"placed {COUNT} orders" in load.log_path.read_text(), system.logs()

            placed = await eventually(
                lambda: len(seen.on(orders_topic)) >= COUNT and seen.on(orders_topic),
                30,
                lambda: f"{COUNT} orders on {orders_topic}, got {len(seen.on(orders_topic))}",
            )
            assert len(placed) == COUNT  # the count is honoured, nothing more
            assert {e.type for e in placed} == {"order.placed"}
            assert {e.source for e in placed} == {"sagastream/load"}
            saga_ids = {e.sagaid for e in placed}
            assert len(saga_ids) == COUNT
            assert len({e.data["order_id"] for e in placed}) == COUNT

            def started() -> set[str]:
                return {e.sagaid for e in seen.of_type("saga.started")} & saga_ids

            await eventually(
                lambda: started() == saga_ids,
                60,
                lambda: f"sagas started for {sorted(saga_ids - started())}; logs:\n{system.logs()}",
                alive=coordinator.alive,
            )
    finally:
        await system.stop()
