"""The order saga with its shipping step served by a faust-streaming app (issue 20), on
a real broker: coordinator, inventory and payment as `sagas` processes, shipping as
examples/faust-shipping/shipping_app.py. Skipped when faust cannot be imported here
(it is the optional extra ``faust``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from services import definitions
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder
from tests.support.processes import ManagedProcess, free_port, sagas_process

pytest.importorskip("faust", reason="faust-streaming is not installed: pip install '.[faust]'")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "faust-shipping" / "shipping_app.py"
CONFIG = "topic_prefix: '{prefix}'\ninventory: {{initial_stock: {{A: 100, EMPTY: 0}}}}\n"


async def test_order_saga_with_shipping_served_by_a_faust_app(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    config = tmp_path / "services.yaml"
    config.write_text(CONFIG.format(prefix=p))
    env = {"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": p + "coordinator"}
    worker = ["worker", "-d", str(definitions.write("order_orchestrated", p, tmp_path))]
    procs: dict[str, ManagedProcess] = {
        "coordinator": sagas_process(
            [*worker, "--web-port", str(free_port())],
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name="coordinator",
            extra_env=env,
        ).start()
    }
    for service in ("inventory", "payment"):
        args = ["service", service, "--config", str(config), "--metrics-port", str(free_port())]
        procs[service] = sagas_process(
            args, bootstrap=kafka_bootstrap, log_dir=tmp_path, name=service, extra_env=env
        ).start()
    faust_env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, **env}
    faust_env["PYTHONUNBUFFERED"] = "1"
    procs["faust"] = ManagedProcess(
        [sys.executable, str(APP), "worker", "-l", "info", "--without-web"],
        faust_env,
        tmp_path / "faust.log",
        "faust",
    ).start()

    def logs() -> str:
        return "\n".join(f"--- {k}\n{proc.log_tail(25)}" for k, proc in procs.items())

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    orders = {f"saga-{i}": "EMPTY" if i % 4 == 3 else "A" for i in range(8)}
    try:
        await eventually(
            lambda: "Ready" in procs["faust"].log_tail(200) or not procs["faust"].alive(),
            timeout=90,
            what=f"the faust worker ready; logs:\n{logs()}",
        )
        assert procs["faust"].alive(), logs()
        await producer.start()
        async with TopicRecorder(
            kafka_bootstrap, p + "saga.lifecycle", p + "shipping.replies"
        ) as seen:
            for saga_id, sku in orders.items():
                data = {
                    "order_id": saga_id,
                    "customer_id": "c1",
                    "amount": 100,
                    "lines": [{"sku": sku, "qty": 1}],
                }
                event = new_event("order.placed", source="test", sagaid=saga_id, data=data)
                value, headers = encode(event)
                await producer.send_and_wait(
                    p + "orders", value, key=saga_id.encode(), headers=headers
                )
            terminal = await eventually(
                lambda: len(seen.terminal()) == len(orders) and seen.terminal(),
                timeout=120,
                what=f"a terminal lifecycle event per saga; logs:\n{logs()}",
            )
            replies = seen.on(p + "shipping.replies")
        expected = {
            s: "compensated" if sku == "EMPTY" else "completed" for s, sku in orders.items()
        }
        assert terminal == expected
        scheduled = [r for r in replies if r.type == "shipping.scheduled"]
        assert sorted(r.sagaid for r in scheduled) == sorted(
            s for s, sku in orders.items() if sku == "A"
        )
        assert all(r.causationid for r in scheduled), "replies name the command they answer"
    finally:
        await producer.stop()
        for proc in procs.values():
            proc.stop()
