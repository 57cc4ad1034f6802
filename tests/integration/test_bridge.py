"""Plug-in path 2: the order saga's payment steps served by an HTTP API through `sagas bridge`.

The payments API (examples/http-bridge/payments_api.py, run in this process)
knows nothing of Kafka. The bridge runs as its own process (`sagas bridge
--config`), with the coordinator, inventory and shipping as the real
processes. Outcomes the user cares about:

* 2xx answers become the success reply with the response JSON as data, and
  the saga completes; a 4xx (over the credit limit) becomes the failure reply
  and the saga compensates;
* a 503 and a timeout are retried with the same Idempotency-Key (the command
  id) and take effect once;
* when shipping refuses after payment, the compensations (refund, void) go
  through the bridge too, and no money is kept for that order.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from sagas.kafka.kafka_settings import KafkaSettings
from services.shipping.domain import carrier_refuses
from tests.support.order_saga import OrderSaga, Recorder, order
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "http-bridge"
CARRIER_FAILURE_RATE = 0.5


def load_payments_api() -> Any:
    spec = importlib.util.spec_from_file_location("payments_api", EXAMPLE / "payments_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def saga_id(name: str, *, shipping_refuses: bool) -> str:
    """A saga id named ``name`` whose shipment the carrier refuses (or not), by design."""
    n = 0
    while carrier_refuses(f"{name}-{n}", CARRIER_FAILURE_RATE) != shipping_refuses:
        n += 1
    return f"{name}-{n}"


async def test_payment_steps_through_the_http_bridge(
    kafka_bootstrap: str, embedded_broker: object, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    api = load_payments_api()
    books = api.Books(
        unavailable_first={"cust-flaky": 2},  # two 503s, then an answer
        slow_first={"cust-slow": 2.0},  # first attempt outlives the bridge's 0.5 s timeout
    )
    runner = web.AppRunner(api.make_app(books), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    config = yaml.safe_load((EXAMPLE / "bridge.yaml").read_text())
    config["topic_prefix"] = p
    config["name"] = f"{p}payment-bridge"
    config["defaults"].update(timeout=0.5, retry={"attempts": 5, "initial": 0.1, "maximum": 0.5})
    bridge_config = tmp_path / "bridge.yaml"
    bridge_config.write_text(yaml.safe_dump(config))

    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    system = OrderSaga(
        kafka,
        p,
        tmp_path,
        env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        services_config=(
            "inventory: {initial_stock: {A: 50}}\n"
            f"shipping: {{failure_rate: {CARRIER_FAILURE_RATE}}}\n"
        ),
        embedded=embedded_broker is not None,
    )
    orders = {
        saga_id("ok", shipping_refuses=False): order(1, customer="cust-001", amount=1200),
        saga_id("flaky", shipping_refuses=False): order(2, customer="cust-flaky", amount=800),
        saga_id("slow", shipping_refuses=False): order(3, customer="cust-slow", amount=700),
        saga_id("broke", shipping_refuses=False): order(4, customer="cust-broke", amount=900),
        saga_id("noship", shipping_refuses=True): order(5, customer="cust-002", amount=1500),
    }
    expected = {sid: "completed" for sid in list(orders)[:3]}
    expected.update({sid: "compensated" for sid in list(orders)[3:]})
    await system.create_topics()
    try:
        system.start_coordinator()
        for name in ("inventory", "shipping"):
            system.start_service(name)
        bridge_port = free_port()
        system.ports["bridge"] = bridge_port
        system.start(
            "bridge",
            [*system.sagas_command(), "bridge", "--config", str(bridge_config),
             "--metrics-port", str(bridge_port)],
            {"PAYMENTS_URL": f"http://127.0.0.1:{port}"},
        )  # fmt: skip
        await system.ready("inventory", "shipping", "bridge")
        commands, replies = system.topic("payment.commands"), system.topic("payment.replies")
        async with Recorder(system.kafka, system.engine.lifecycle, commands, replies) as seen:
            ids = await system.place(orders.items())
            assert await system.wait_terminal(seen, ids) == expected

        sent = {e.id: e for e in seen.on(commands)}
        answered = {e.causationid: e for e in seen.on(replies)}
        # Every request carried its command's id as the idempotency key, and every
        # command got one reply, caused by it.
        assert {key for _, key, _ in books.requests} == set(sent)
        assert set(answered) == set(sent)
        # Retries reused the key and took effect once.
        tries = {key: sum(1 for _, k, _ in books.requests if k == key) for key in sent}
        by_saga = {sid: [c for c in sent.values() if c.sagaid == sid] for sid in orders}
        flaky = next(c for c in by_saga[list(orders)[1]] if c.type == "payment.authorize")
        slow = next(c for c in by_saga[list(orders)[2]] if c.type == "payment.authorize")
        assert tries[flaky.id] == 3 and tries[slow.id] >= 2
        assert len(books.answers) == len(sent)
        # 2xx: the success type with the API's JSON as data.
        authorized = answered[flaky.id]
        assert authorized.type == "payment.authorized"
        assert authorized.data == books.answers[flaky.id][1]
        # 4xx: the failure type, the API's reason kept.
        broke = next(c for c in by_saga[list(orders)[3]] if c.type == "payment.authorize")
        declined = answered[broke.id]
        assert declined.type == "payment.declined"
        assert declined.data["reason"] == "credit limit exceeded"
        assert declined.data["http_status"] == 402
        # Shipping refused after the capture: refund and void went through the bridge.
        noship = [c.type for c in by_saga[list(orders)[4]]]  # one saga: one partition, in order
        assert noship == ["payment.authorize", "payment.capture", "payment.refund", "payment.void"]
        assert {answered[c.id].type for c in by_saga[list(orders)[4]]} >= {
            "payment.refunded",
            "payment.voided",
        }
        # The books: money kept for exactly the completed orders.
        assert books.kept() == sum(orders[sid]["amount"] for sid, s in expected.items()
                                   if s == "completed")  # fmt: skip
        stock = system.get("inventory", "/invariants")
        assert stock["conserved"] and all(s["reserved"] == 0 for s in stock["skus"].values())
    finally:
        await system.stop()
        await runner.cleanup()
