"""Plug-in path 1: the order saga with its shipping step served by a shell script and kcat.

``examples/kcat-shipping/shipping.sh`` replaces the Python shipping service;
the coordinator, inventory and payment are the real processes. With the
failure switch off every order completes; switched on (the script restarted
with ``SHIPPING_FAIL=1``), shipping says no and the saga compensates what was
done, in reverse order. A command delivered twice is answered twice with the
same reply and booked once.

On the embedded broker every client goes through ``ApiVersionsShim``: Debian's
kcat cannot parse Tansu's ApiVersions reply (see tests/support/kafka_proxy.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import decode
from sagas.kafka.embedded_broker import EmbeddedBroker
from sagas.kafka.kafka_settings import KafkaSettings
from tests.support.kafka_peers import eventually
from tests.support.kafka_proxy import tansu_behind_shim
from tests.support.order_saga import OrderSaga, Recorder, order

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "kcat-shipping" / "shipping.sh"
SERVICES = "inventory: {initial_stock: {A: 50}}\n"


@pytest.fixture
def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("kcat is not installed and CI is set: install the Debian package kcat")
    pytest.skip("kcat is not installed (apt-get install kcat)")


@pytest.fixture
async def broker(
    embedded_broker: EmbeddedBroker | None, kafka_bootstrap: str
) -> AsyncIterator[str]:
    """A broker kcat can reach: the configured cluster, or Tansu behind the shim."""
    if embedded_broker is None:
        yield kafka_bootstrap
        return
    async with tansu_behind_shim() as shim:
        yield shim.address


async def test_order_saga_with_the_kcat_shipping_participant(
    kcat: str,
    broker: str,
    embedded_broker: EmbeddedBroker | None,
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    p = unique_prefix
    kafka = KafkaSettings(bootstrap_servers=broker)
    system = OrderSaga(
        kafka,
        p,
        tmp_path,
        env={"KAFKA_BOOTSTRAP_SERVERS": broker},
        services_config=SERVICES,
        embedded=embedded_broker is not None,
    )
    state = tmp_path / "shipping.state"
    shipping_env = {
        "KCAT": kcat,
        "SHIPPING_COMMANDS_TOPIC": system.topic("shipping.commands"),
        "SHIPPING_REPLIES_TOPIC": system.topic("shipping.replies"),
        "SHIPPING_GROUP": f"{p}kcat-shipping",
        "SHIPPING_STATE_FILE": str(state),
    }

    async def start_shipping(fail: bool, log_name: str) -> None:
        process = system.start(
            log_name, [str(SCRIPT)], {**shipping_env, "SHIPPING_FAIL": "1" if fail else "0"}
        )
        # Orders placed before the script joined its group would still be answered (it
        # reads from the earliest offset), but could run into the saga's step deadline.
        await eventually(
            lambda: "assigned:" in process.log_path.read_text(errors="replace"),
            45,
            lambda: f"kcat joined its group; logs:\n{system.logs()}",
            alive=process.alive,
        )

    await system.create_topics()
    try:
        system.start_coordinator()
        for name in ("inventory", "payment"):
            system.start_service(name)
        await system.ready("inventory", "payment")
        await start_shipping(fail=False, log_name="shipping-ok")
        commands, replies = system.topic("shipping.commands"), system.topic("shipping.replies")
        lifecycle_topic = system.engine.lifecycle
        async with Recorder(system.kafka, lifecycle_topic, commands, replies) as seen:
            ok = await system.place((f"ok-{i}", order(i)) for i in range(3))
            assert await system.wait_terminal(seen, ok) == dict.fromkeys(ok, "completed")

            # Each reply answers its command: causationid = the command's id, same saga,
            # in the saga's partition (kcat uses the murmur2 partitioner).
            sent = {e.id: e for e in seen.on(commands)}
            answers = seen.on(replies)
            assert {a.causationid for a in answers} == set(sent)
            for answer in answers:
                assert answer.type == "shipping.scheduled"
                assert answer.sagaid == sent[answer.causationid].sagaid
                assert answer.data["shipment_id"] == f"shp-{answer.sagaid}"
            by_key = {(r.topic, r.key): r.partition for r in seen.raw}
            for saga_id in ok:
                assert by_key[(replies, saga_id.encode())] == by_key[(commands, saga_id.encode())]

            # A command delivered again is answered with the recorded reply, booked once.
            first = next(r for r in seen.raw if r.topic == commands)
            booked = state.read_text().count("\tshipping.scheduled\t")
            producer = AIOKafkaProducer(**system.kafka.aiokafka_kwargs())
            await producer.start()
            try:
                await producer.send_and_wait(
                    commands, first.value, key=first.key, headers=list(first.headers)
                )
            finally:
                await producer.stop()
            original = next(a for a in answers if a.causationid == sent_id(first))
            await eventually(
                lambda: len([a for a in seen.on(replies) if a.id == original.id]) == 2,
                30,
                lambda: f"the duplicate answered; logs:\n{system.logs()}",
            )
            again = [a for a in seen.on(replies) if a.id == original.id][-1]
            assert again.data == original.data
            assert state.read_text().count("\tshipping.scheduled\t") == booked == 3

            # The failure switch: shipping refuses, the saga undoes what it did.
            system.processes["shipping-ok"].stop()
            await start_shipping(fail=True, log_name="shipping-fail")
            failing = await system.place((f"fail-{i}", order(10 + i)) for i in range(2))
            assert await system.wait_terminal(seen, failing) == dict.fromkeys(
                failing, "compensated"
            )
            for saga_id in failing:
                refused = [a for a in seen.on(replies) if a.sagaid == saga_id]
                assert {a.type for a in refused} == {"shipping.failed"}

        # Nothing of the compensated orders is kept: stock back, money back.
        stock = system.get("inventory", "/invariants")
        assert stock["conserved"] and stock["skus"]["A"]["reserved"] == 0, stock
        assert stock["skus"]["A"]["shipped"] == len(ok), stock
        money = system.get("payment", "/invariants")
        assert money["kept"] == 1000 * len(ok), money
        assert set(money["kept_by_saga"]) == set(ok), money
    finally:
        await system.stop()


def sent_id(record: Any) -> str:
    return decode(record.value, record.headers).id
