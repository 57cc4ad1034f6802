"""`sagas service inventory` as a process: answers, survives SIGKILL, stops on SIGTERM."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from events.codec import encode
from events.envelope import CloudEvent, new_event
from tests.kafka_fixtures import eventually
from tests.support.kafka_peers import TopicRecorder
from tests.support.processes import free_port, sagas_process

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            body = response.read()
    except OSError:
        return None
    return body.decode() if path == "/metrics" else json.loads(body)


def _metric(port: int, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(_get(port, "/metrics") or ""):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


def _reserve(saga: str, qty: int) -> CloudEvent:
    data = {"order_id": f"o-{saga}", "lines": [{"sku": "SKU-A", "qty": qty}]}
    return new_event("inventory.reserve", source="test", sagaid=saga, data=data)


async def test_inventory_service_survives_sigkill_without_a_second_effect(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path
) -> None:
    p = unique_prefix
    config = tmp_path / "services.yaml"
    config.write_text(f"topic_prefix: '{p}'\ninventory: {{initial_stock: {{SKU-A: 5}}}}\n")
    port = free_port()

    def service() -> Any:
        return sagas_process(
            ["service", "inventory", "--config", str(config), "--metrics-port", str(port)],
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name="inventory",
            extra_env={"SAGAS_TOPIC_PREFIX": p, "SAGAS_PARTITIONS": "4"},
        ).start()

    async def ready(proc: Any) -> None:
        assert proc.alive(), proc.log_tail()
        await eventually(
            lambda: (_get(port, "/health") or {}).get("ready"),
            timeout=30,
            what=f"the service to be ready; log:\n{proc.log_tail()}",
        )

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    proc = service()
    try:
        await ready(proc)
        await producer.start()
        async with TopicRecorder(kafka_bootstrap, p + "inventory.replies") as rec:

            def answers(command: CloudEvent) -> list[Any]:
                return [r for _, r in rec.events if r.causationid == command.id]

            async def send(command: CloudEvent) -> None:
                value, headers = encode(command)
                await producer.send_and_wait(
                    p + "inventory.commands", value, key=command.sagaid.encode(), headers=headers
                )

            first = _reserve("saga-a", 3)
            await send(first)
            (reply,) = await eventually(lambda: answers(first), what="the reservation")
            assert reply.type == "inventory.reserved"
            assert _get(port, "/invariants")["skus"]["SKU-A"]["reserved"] == 3
            assert _metric(port, "participant_commands_total", result="inventory.reserved") == 1

            proc.kill()  # SIGKILL: no goodbye
            proc = service()
            await ready(proc)
            await send(first)  # redelivered after the crash
            second = _reserve("saga-b", 3)
            await send(second)
            (rejected,) = await eventually(lambda: answers(second), what="the second order")
            assert rejected.type == "inventory.rejected"  # only 2 left: the first held once
            assert rejected.data["available"] == 2
            again = await eventually(
                lambda: len(answers(first)) == 2 and answers(first),
                what="the re-answer to the redelivered command",
            )
            assert again[0] == again[1]  # the original reply
            stock = _get(port, "/invariants")
            assert stock["skus"]["SKU-A"] == {
                "initial": 5,
                "available": 2,
                "reserved": 3,
                "shipped": 0,
            }
            assert stock["conserved"]
        proc.stop(timeout=10)
        assert proc.proc is not None and proc.proc.returncode == 0, proc.log_tail()
    finally:
        proc.kill()
        await producer.stop()
