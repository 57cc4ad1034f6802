"""The shipped order sagas on a real broker: coordinator + the four services as processes.

Orders with injected failures (an SKU at zero, a customer over the limit, a
carrier failure rate, late answers), one service SIGKILLed and restarted
mid-run; every order must end approved or rejected to match its saga, and
stock and money must balance.
"""

from __future__ import annotations

import json
import random
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from services import definitions
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder
from tests.support.processes import ManagedProcess, free_port, sagas_process

pytestmark = pytest.mark.integration

SERVICES = ("inventory", "payment", "shipping", "order")
ORDERS = 40
CONFIG = """
topic_prefix: '{prefix}'
mode: {mode}
inventory: {{initial_stock: {{A: 100, B: 100, EMPTY: 0}}, late: {{probability: 0.05, delay: 1}}}}
payment: {{credit_limits: {{broke: 100}}, default_credit_limit: 100000000}}
shipping: {{failure_rate: 0.15}}
"""


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _orders(n: int) -> list[dict[str, Any]]:
    rng = random.Random(4)
    out = []
    for i in range(n):
        sku = rng.choice(["A", "B", "EMPTY"]) if rng.random() < 0.3 else "A"
        customer = "broke" if rng.random() < 0.1 else f"c{i % 7}"
        out.append(
            {
                "order_id": f"o{i}",
                "customer_id": customer,
                "amount": 500 + i,
                "lines": [{"sku": sku, "qty": 1 + i % 2}],
            }
        )
    return out


@pytest.mark.parametrize("mode", ["orchestrated", "choreography"])
async def test_order_saga_outcomes_and_books_survive_a_killed_service(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, mode: str
) -> None:
    p = unique_prefix
    name = "order_orchestrated" if mode == "orchestrated" else "order_choreographed"
    config = tmp_path / "services.yaml"
    config.write_text(CONFIG.format(prefix=p, mode=mode))
    env = {"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": p + "coordinator"}
    ports = {s: free_port() for s in SERVICES}

    def start(service: str) -> ManagedProcess:
        args = ["service", service, "--config", str(config), "--metrics-port", str(ports[service])]
        return sagas_process(
            args, bootstrap=kafka_bootstrap, log_dir=tmp_path, name=service, extra_env=env
        ).start()

    def logs() -> str:
        return "\n".join(f"--- {k}\n{proc.log_tail(15)}" for k, proc in procs.items())

    async def ready(service: str) -> None:
        await eventually(
            lambda: (_get(ports[service], "/health") or {}).get("ready"),
            timeout=30,
            what=f"{service} ready; logs:\n{logs()}",
        )

    worker_args = [
        "worker",
        "-d",
        str(definitions.write(name, p, tmp_path)),
        "--web-port",
        str(free_port()),
    ]
    procs = {
        "coordinator": sagas_process(
            worker_args,
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name="coordinator",
            extra_env=env,
        )
    }
    procs["coordinator"].start()
    procs.update({s: start(s) for s in SERVICES})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    orders = _orders(ORDERS)
    try:
        for service in SERVICES:
            await ready(service)
        await producer.start()
        async with TopicRecorder(kafka_bootstrap, p + "saga.lifecycle") as lifecycle:
            for i, order in enumerate(orders):
                event = new_event("order.placed", source="test", sagaid=f"saga-{i}", data=order)
                value, headers = encode(event)
                await producer.send_and_wait(
                    p + "orders", value, key=event.sagaid.encode(), headers=headers
                )
                if i == ORDERS // 2:
                    procs["payment"].kill()  # SIGKILL in the middle of the run
                    procs["payment"] = start("payment")
            await ready("payment")

            def settled() -> dict[str, Any] | None:
                view = _get(ports["order"], "/invariants")
                return (
                    view
                    if view and view["counts"]["pending"] == 0 and len(view["orders"]) == ORDERS
                    else None
                )

            view = await eventually(settled, timeout=90, what=f"every order settled:\n{logs()}")
            terminal = await eventually(
                lambda: len(lifecycle.terminal()) == ORDERS and lifecycle.terminal(),
                what="a terminal lifecycle event per saga",
            )
        for order_id, status in view["orders"].items():
            expected = "approved" if terminal[status["saga_id"]] == "completed" else "rejected"
            assert status["status"] == expected, (order_id, status, terminal[status["saga_id"]])
        counts = view["counts"]
        assert counts["approved"] > 0 and counts["rejected"] > 0, counts
        stock = _get(ports["inventory"], "/invariants")
        assert stock["conserved"], stock
        assert all(s["reserved"] == 0 for s in stock["skus"].values()), stock
        approved = [o for o in orders if view["orders"][o["order_id"]]["status"] == "approved"]
        shipped = sum(s["shipped"] for s in stock["skus"].values())
        assert shipped == sum(line["qty"] for o in approved for line in o["lines"])
        money = _get(ports["payment"], "/invariants")
        assert money["kept"] == view["approved_amount"] == sum(o["amount"] for o in approved)
        # No hold is left dangling: what customers owe is exactly what was kept.
        assert money["within_limits"] and sum(money["exposure"].values()) == money["kept"]
    finally:
        await producer.stop()
        for proc in procs.values():
            proc.stop()
