"""SIGKILL the coordinator with 100 sagas in flight: a restarted one finishes them all,
and no participant sees a second command (a new id) for a step it already did."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sagas.client import SagaClient
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from tests.integration.test_coordinator_saga import FAST_GROUP, TOPICS
from tests.integration.trip_system import act, definitions
from tests.support.kafka_peers import ScriptedParticipant, TopicRecorder, eventually
from tests.support.processes import free_port, sagas_process

pytestmark = pytest.mark.integration

SAGAS = 100


async def test_coordinator_killed_mid_flight_finishes_every_saga(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = f"k{uuid.uuid4().hex[:8]}."
    path = tmp_path / "trip.yaml"
    # Deadlines far beyond the restart, so every command seen twice is a re-send, not a retry.
    path.write_text(definitions(p, timeout=60, car_timeout=60))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    await ensure_topics(kafka, [f"{p}{name}" for name in TOPICS])
    env = {
        "SAGAS_TOPIC_PREFIX": p,
        "SAGAS_APP_ID": f"{p}coordinator",
        **FAST_GROUP,
        "SAGAS_LOG_LEVEL": "info",
    }

    def coordinator(name: str):  # type: ignore[no-untyped-def]
        return sagas_process(
            ["worker", "-d", str(path), "--web-port", str(free_port())],
            bootstrap=kafka_bootstrap,
            log_dir=tmp_path,
            name=name,
            # the same replica, restarted: it reclaims its membership at once
            extra_env={**env, "SAGAS_INSTANCE_ID": "replica-1"},
        ).start()

    b = kafka_bootstrap
    peers = [
        ScriptedParticipant(
            b,
            f"{p}hotel.commands",
            f"{p}hotel.replies",
            act("hotel", "hotel.booked", "hotel.unavailable"),
            name="hotel",
        ),
        ScriptedParticipant(
            b,
            f"{p}flight.commands",
            f"{p}flight.replies",
            act("flight", "flight.booked", "flight.full"),
            name="flight",
            delay=0.01,
        ),
        ScriptedParticipant(
            b,
            f"{p}car.commands",
            f"{p}car.replies",
            act("car", "car.rented", "car.unavailable"),
            name="car",
            delay=0.03,
        ),
    ]
    first = coordinator("coordinator-1")
    second = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            seen = await stack.enter_async_context(TopicRecorder(b, f"{p}saga.lifecycle"))
            await asyncio.gather(*(stack.enter_async_context(peer) for peer in peers))
            client = await stack.enter_async_context(SagaClient(kafka))
            ids = [await client.start_saga("trip", {"n": i}, wait=False) for i in range(SAGAS)]
            await client.flush()

            def finished() -> int:
                done = seen.terminal()
                return sum(1 for sid in ids if sid in done)

            await eventually(
                lambda: finished() >= 5,
                60,
                lambda: f"the first sagas to finish:\n{first.log_tail()}",
                interval=0.01,
            )
            first.kill()
            in_flight = SAGAS - finished()
            assert in_flight > 0, "every saga finished before the kill: the test proves nothing"

            second = coordinator("coordinator-2")
            await eventually(
                lambda: finished() == SAGAS,
                90,
                lambda: f"{SAGAS} terminal sagas, got {finished()}:\n{second.log_tail()}",
                alive=second.alive,
            )
            done = seen.terminal()
            assert {done[sid] for sid in ids} == {"completed"}
            for peer in peers:
                # One effect per saga: every command the restarted coordinator re-sent
                # carried the id the participant had already acted on.
                per_step = Counter(c.sagaid for c in peer.effects.values())
                assert set(per_step) == set(ids), f"{peer.name} missed sagas"
                assert max(per_step.values()) == 1, (
                    f"{peer.name} got a second command for "
                    f"{[s for s, n in per_step.items() if n > 1][:5]}"
                )
            print(
                f"killed with {in_flight} sagas in flight; "
                f"re-delivered ids: {sum(n - 1 for peer in peers for n in peer.deliveries.values())}"
            )
    finally:
        first.stop()
        if second is not None:
            second.stop()
