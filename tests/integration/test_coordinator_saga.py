"""The coordinator on a real broker: a 3-step saga defined in YAML, with tiny participants on
plain aiokafka, orchestrated and choreographed, plus dead letters for bad input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from events.topics import Topics
from sagas.client import SagaClient
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from tests.integration.trip_system import act, definitions
from tests.support.kafka_peers import ScriptedParticipant, TopicRecorder, eventually
from tests.support.processes import ManagedProcess, free_port, sagas_process

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

# Short grace and retention so those behaviours are observable within a test.
FAST_GROUP = {"SAGAS_EARLY_EVENT_GRACE": "2", "SAGAS_RETENTION": "3"}
if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
    # the embedded broker completes a group join after about half the session timeout
    FAST_GROUP |= {
        "SAGAS_SESSION_TIMEOUT": "3",
        "SAGAS_HEARTBEAT_INTERVAL": "0.5",
        "SAGAS_REBALANCE_TIMEOUT": "2",
    }


TOPICS = [
    f"{s}.{kind}" for s in ("hotel", "flight", "car") for kind in ("commands", "replies", "events")
] + ["trips", *Topics().all()]  # the engine's topics, saga.starts among them


@dataclass
class Trip:
    prefix: str
    worker: ManagedProcess
    seen: TopicRecorder
    client: SagaClient
    producer: AIOKafkaProducer

    def terminal(self, ids: list[str]) -> dict[str, str]:
        done = self.seen.terminal()
        return {sid: done[sid] for sid in ids if sid in done}

    async def wait_terminal(self, ids: list[str], timeout: float = 45) -> dict[str, str]:
        await eventually(
            lambda: len(self.terminal(ids)) == len(ids),
            timeout,
            lambda: (
                f"{len(ids)} terminal sagas, got {self.terminal(ids)}; worker log:\n"
                f"{self.worker.log_tail()}"
            ),
            alive=self.worker.alive,
        )
        return self.terminal(ids)

    def commands_of(self, saga_id: str) -> list[str]:
        # topics are read side by side: order by when the coordinator decided to send
        sent = [e for t, e in self.seen.events if e.sagaid == saga_id and t.endswith(".commands")]
        return [e.type for e in sorted(sent, key=lambda e: e.time or 0)]

    async def publish(self, topic: str, value: bytes, key: str) -> None:
        await self.producer.send_and_wait(f"{self.prefix}{topic}", value, key=key.encode())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trip(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Trip]:
    p = f"t{uuid.uuid4().hex[:8]}."
    folder = tmp_path_factory.mktemp("trip")
    path = folder / "trip.yaml"
    path.write_text(definitions(p))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    # Create every topic up front: a consumer that subscribes first would let the broker
    # auto-create it with its default partition count, and the coordinator refuses that.
    await ensure_topics(kafka, [f"{p}{name}" for name in TOPICS])
    worker = sagas_process(
        ["worker", "-d", str(path), "--web-port", str(free_port())],
        bootstrap=kafka_bootstrap,
        log_dir=folder,
        name="coordinator",
        extra_env={"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": f"{p}coordinator", **FAST_GROUP},
    ).start()
    b = kafka_bootstrap
    peers = [
        # orchestration: commands in, replies out (also the compensations of both modes)
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
        ),
        ScriptedParticipant(
            b,
            f"{p}car.commands",
            f"{p}car.replies",
            act("car", "car.rented", "car.unavailable"),
            name="car",
        ),
        # choreography: each service reacts to the previous one's event
        ScriptedParticipant(
            b,
            f"{p}trips",
            f"{p}hotel.events",
            react("hotel", "trip.requested", "hotel.booked", "hotel.unavailable"),
        ),
        ScriptedParticipant(
            b,
            f"{p}hotel.events",
            f"{p}flight.events",
            react("flight", "hotel.booked", "flight.booked", "flight.full"),
        ),
        ScriptedParticipant(
            b,
            f"{p}flight.events",
            f"{p}car.events",
            react("car", "flight.booked", "car.rented", "car.unavailable"),
        ),
    ]
    async with contextlib.AsyncExitStack() as stack:
        seen = await stack.enter_async_context(
            TopicRecorder(
                b,
                f"{p}saga.lifecycle",
                f"{p}saga.deadletter",
                f"{p}hotel.commands",
                f"{p}flight.commands",
                f"{p}car.commands",
            )
        )
        await asyncio.gather(*(stack.enter_async_context(peer) for peer in peers))
        client = await stack.enter_async_context(SagaClient(kafka))
        producer = AIOKafkaProducer(bootstrap_servers=b)
        await producer.start()
        stack.push_async_callback(producer.stop)
        try:
            yield Trip(p, worker, seen, client, producer)
        finally:
            worker.stop()


def react(service: str, on: str, success: str, failure: str):  # type: ignore[no-untyped-def]
    decide = act(service, success, failure)

    def handle(event: Any) -> tuple[str, dict[str, Any]] | None:
        if event.type != on:
            return None
        answer = decide(event)
        return None if answer is None else (answer[0], {**event.data, **answer[1]})

    return handle


SCENARIOS = {"ok": "completed", "fail": "compensated", "silent": "compensated"}


@pytest.mark.parametrize("car", list(SCENARIOS))
async def test_orchestrated_trip(trip: Trip, car: str) -> None:
    ids = [
        await trip.client.start_saga("trip", {"traveller": f"p{i}", "car": car}) for i in range(5)
    ]
    assert await trip.wait_terminal(ids) == {sid: SCENARIOS[car] for sid in ids}
    for sid in ids:
        if car == "ok":
            assert trip.commands_of(sid) == ["hotel.book", "flight.book", "car.rent"]
        else:
            # step 3 said no or never answered: steps 2 then 1 are undone, in that order
            assert trip.commands_of(sid) == [
                "hotel.book",
                "flight.book",
                "car.rent",
                "flight.cancel",
                "hotel.cancel",
            ]


@pytest.mark.parametrize("car", list(SCENARIOS))
async def test_choreographed_trip(trip: Trip, car: str) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for sid in ids:
        event = new_event("trip.requested", source="test", sagaid=sid, data={"car": car})
        value, _ = encode(event)
        await trip.publish("trips", value, sid)
    assert await trip.wait_terminal(ids) == {sid: SCENARIOS[car] for sid in ids}
    for sid in ids:
        # the coordinator sends nothing forward; it only undoes what the services did
        expected = [] if car == "ok" else ["flight.cancel", "hotel.cancel"]
        assert trip.commands_of(sid) == expected


async def test_bad_records_are_dead_lettered_and_sagas_around_them_finish(trip: Trip) -> None:
    before = [await trip.client.start_saga("trip", {"car": "ok"}) for _ in range(3)]
    known = before[0]
    stranger = str(uuid.uuid4())
    bad = {
        "not-json": b"\x00\xffgarbage",
        "not-a-cloudevent": orjson.dumps({"hello": "world", "sagaid": known}),
        "unknown-type": encode(new_event("hotel.exploded", source="x", sagaid=known))[0],
        "unknown-saga": encode(
            new_event("hotel.booked", source="x", sagaid=stranger, causationid=str(uuid.uuid4()))
        )[0],
    }
    for reason, value in bad.items():
        await trip.publish("hotel.replies", value, known if reason != "unknown-saga" else stranger)
    after = [await trip.client.start_saga("trip", {"car": "ok"}) for _ in range(3)]

    assert set((await trip.wait_terminal(before + after)).values()) == {"completed"}

    def dead() -> dict[str, list[dict[str, bytes]]]:
        out: dict[str, list[dict[str, bytes]]] = {}
        for record in trip.seen.raw:
            if record.topic.endswith("saga.deadletter"):
                headers = dict(record.headers)
                reason = headers["x-dlq-reason"].decode()
                out.setdefault(reason, []).append({**headers, "value": record.value})
        return out

    def ours() -> dict[str, dict[str, bytes]]:
        return {
            reason: letter
            for reason, value in bad.items()
            for letter in dead().get(reason, [])
            if letter["value"] == value  # the record goes to the dead-letter topic unchanged
        }

    await eventually(lambda: set(ours()) == set(bad), 20, lambda: f"dead letters {dead()}")
    for letter in ours().values():
        assert letter["x-dlq-topic"] == f"{trip.prefix}hotel.replies".encode()
        assert int(letter["x-dlq-offset"]) >= 0, "the original offset is kept"


async def test_a_finished_saga_is_forgotten_after_its_retention(trip: Trip) -> None:
    sid = await trip.client.start_saga("trip", {"car": "ok"})
    assert await trip.wait_terminal([sid]) == {sid: "completed"}
    hotel_book = next(e for t, e in trip.seen.events if e.sagaid == sid and e.type == "hotel.book")
    late = encode(hotel_book.reply("hotel.booked", "hotel"))[0]

    # Within the retention a duplicate reply is recognised and only counted...
    await trip.publish("hotel.replies", late, sid)

    # ...after it (3 s here) the saga is gone: the same reply is for an unknown saga.
    def dead_for_saga() -> list[Any]:
        return [
            r
            for r in trip.seen.raw
            if r.topic.endswith("saga.deadletter") and r.key == sid.encode()
        ]

    await eventually(lambda: trip.seen.terminal().get(sid), 5, "terminal")
    await asyncio.sleep(0)  # let the recorder catch up before asserting nothing arrived yet
    assert dead_for_saga() == []

    async def republish_until_dead() -> bool:
        await trip.publish("hotel.replies", late, sid)
        return bool(dead_for_saga())

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not await republish_until_dead():
        assert loop.time() < deadline, "the finished saga was never removed from the table"
        await asyncio.sleep(1)
    reasons = {dict(r.headers)["x-dlq-reason"] for r in dead_for_saga()}
    assert reasons == {b"unknown-saga"}
