"""Issue 22 on a real broker: a late booking in a choreography, and what it set off, undone.

flight -> hotel -> car (the pivot), every step choreographed. The hotel stays silent past
its deadline, answers the in-doubt cancel as a no-op (it booked nothing yet), and books
after the saga has ended compensated; the car service books in reaction to that booking.
The services are a few lines of plain aiokafka that write CloudEvents JSON by hand: what a
team on another stack would write from the README's contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from events.topics import Topics
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings
from tests.support.kafka_peers import TopicRecorder, eventually
from tests.support.processes import free_port, sagas_process

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

DEFINITION = """
sagas:
  - name: trip-late
    trigger: {{topic: {p}trips, type: trip.requested}}
    steps:
      - name: flight
        observes: {p}flight.events
        success: [flight.booked]
        compensation: {{type: flight.cancel, topic: {p}flight.commands,
                        reply_topic: {p}flight.events, success: [flight.cancelled]}}
        timeout: 10
      - name: hotel
        observes: {p}hotel.events
        success: [hotel.booked]
        compensation: {{type: hotel.cancel, topic: {p}hotel.commands,
                        reply_topic: {p}hotel.events, success: [hotel.cancelled]}}
        timeout: 1.5
      - name: car
        pivot: true
        observes: {p}car.events
        success: [car.booked]
        compensation: {{type: car.cancel, topic: {p}car.commands,
                        reply_topic: {p}car.events, success: [car.cancelled]}}
        timeout: 10
"""
SERVICES = ("flight", "hotel", "car")
# the engine's own topics from the contract (saga.starts too): one left out here is
# created by whatever asks for it first, maybe with the broker's default partition count
TOPICS = [f"{s}.{kind}" for s in SERVICES for kind in ("commands", "events")] + [
    "trips",
    *Topics().all(),
]
ENGINE_ENV = {"SAGAS_EARLY_EVENT_GRACE": "5"}
if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
    ENGINE_ENV |= {
        "SAGAS_SESSION_TIMEOUT": "3",
        "SAGAS_HEARTBEAT_INTERVAL": "0.5",
        "SAGAS_REBALANCE_TIMEOUT": "2",
    }


def cloudevent(type_: str, source: str, saga_id: str, data: dict[str, Any], **ext: str) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": ext.pop("id", None) or str(uuid.uuid4()),
            "source": source,
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "sagaid": saga_id,
            "data": data,
            **ext,
        }
    )


class BookingService:
    """Books one thing per saga when it sees ``reacts_to`` (or when told), and undoes it on
    ``<name>.cancel``: idempotent by command id, a cancel of nothing is a no-op success."""

    def __init__(self, bootstrap: str, p: str, name: str, reacts_to: str | None) -> None:
        self.bootstrap, self.p, self.name, self.reacts_to = bootstrap, p, name, reacts_to
        self.bookings: dict[str, str] = {}  # saga id -> booking id, while booked
        self.ever_booked: set[str] = set()
        self.answered: dict[str, bytes] = {}  # cancel command id -> the reply sent
        self.upstream = {"trip.requested": "trips", "hotel.booked": "hotel.events"}

    async def __aenter__(self) -> BookingService:
        topics = [f"{self.p}{self.name}.commands"]
        if self.reacts_to is not None:
            topics.append(f"{self.p}{self.upstream[self.reacts_to]}")
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1)
        await self.consumer.start()
        await self.producer.start()
        self.task = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        async for record in self.consumer:
            event = orjson.loads(record.value)
            saga_id = event["sagaid"]
            if event["type"] == self.reacts_to:
                await self.book(saga_id)
            elif event["type"] == f"{self.name}.cancel":
                await self.cancel(saga_id, event["id"])

    async def book(self, saga_id: str) -> None:
        booking = self.bookings.setdefault(saga_id, f"{self.name}-{uuid.uuid4().hex[:6]}")
        self.ever_booked.add(saga_id)
        value = cloudevent(f"{self.name}.booked", self.name, saga_id, {self.name: booking})
        await self.send(saga_id, value)

    async def cancel(self, saga_id: str, command_id: str) -> None:
        if command_id not in self.answered:
            undone = self.bookings.pop(saga_id, None)
            self.answered[command_id] = cloudevent(
                f"{self.name}.cancelled",
                self.name,
                saga_id,
                {"undone": undone},
                id=f"{command_id}-reply",
                causationid=command_id,
            )
        await self.send(saga_id, self.answered[command_id])

    async def send(self, saga_id: str, value: bytes) -> None:
        await self.producer.send_and_wait(
            f"{self.p}{self.name}.events",
            value,
            key=saga_id.encode(),
            headers=[("content-type", b"application/cloudevents+json")],
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[dict[str, BookingService], TopicRecorder, AIOKafkaProducer, str]]:
    p = f"late{uuid.uuid4().hex[:8]}."
    folder = tmp_path_factory.mktemp("late")
    path = folder / "trip.yaml"
    path.write_text(DEFINITION.format(p=p))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=p)
    await ensure_topics(kafka, [f"{p}{name}" for name in TOPICS])
    worker = sagas_process(
        ["worker", "-d", str(path), "--web-port", str(free_port())],
        bootstrap=kafka_bootstrap,
        log_dir=folder,
        name="coordinator",
        extra_env={"SAGAS_TOPIC_PREFIX": p, "SAGAS_APP_ID": f"{p}coordinator", **ENGINE_ENV},
    ).start()
    b = kafka_bootstrap
    services = {
        "flight": BookingService(b, p, "flight", "trip.requested"),
        "hotel": BookingService(b, p, "hotel", None),  # silent: the test says when it books
        "car": BookingService(b, p, "car", "hotel.booked"),
    }
    async with contextlib.AsyncExitStack() as stack:
        seen = await stack.enter_async_context(
            TopicRecorder(b, f"{p}saga.lifecycle", *(f"{p}{s}.commands" for s in SERVICES))
        )
        for service in services.values():
            await stack.enter_async_context(service)
        producer = AIOKafkaProducer(bootstrap_servers=b)
        await producer.start()
        stack.push_async_callback(producer.stop)
        try:
            yield services, seen, producer, p
        finally:
            if not worker.alive():
                print(worker.log_tail())
            worker.stop()


def lifecycle(seen: TopicRecorder, saga_id: str) -> list[tuple[str, str | None]]:
    return [
        (e.type, e.data.get("step"))
        for t, e in seen.events
        if t.endswith("saga.lifecycle") and e.sagaid == saga_id
    ]


async def test_late_booking_and_the_booking_it_set_off_are_undone(system: Any) -> None:
    services, seen, producer, p = system
    saga_id = str(uuid.uuid4())
    trigger = cloudevent("trip.requested", "test", saga_id, {"traveller": "ada"})
    await producer.send_and_wait(f"{p}trips", trigger, key=saga_id.encode())

    # The hotel says nothing by its deadline: it is cancelled in doubt (a no-op), then the
    # flight is cancelled and the saga ends compensated.
    await eventually(
        lambda: ("saga.compensated", None) in lifecycle(seen, saga_id),
        30,
        lambda: f"saga.compensated; lifecycle so far {lifecycle(seen, saga_id)}",
    )
    assert saga_id in services["flight"].ever_booked
    assert not services["flight"].bookings and not services["hotel"].bookings

    # Then the hotel books after all, and the car service reacts to that booking.
    await services["hotel"].book(saga_id)
    await eventually(
        lambda: saga_id in services["car"].ever_booked, 15, "the car service to book a car"
    )

    def every_booking_undone() -> bool:
        return not any(saga_id in s.bookings for s in services.values())

    await eventually(
        every_booking_undone,
        20,
        lambda: (
            f"every booking undone; still booked: "
            f"{ {n: s.bookings.get(saga_id) for n, s in services.items()} }; "
            f"lifecycle {lifecycle(seen, saga_id)}"
        ),
    )
    await eventually(lambda: len(lifecycle_late(seen, saga_id)) == 4, 10, "late lifecycle")
    late = lifecycle_late(seen, saga_id)
    assert sorted(late) == sorted(
        [
            ("saga.step.late_succeeded", "hotel"),
            ("saga.step.late_compensated", "hotel"),
            ("saga.step.late_succeeded", "car"),
            ("saga.step.late_compensated", "car"),
        ]
    )
    terminal = [t for t, _ in lifecycle(seen, saga_id) if t in TERMINAL]
    assert terminal == ["saga.compensated"]
    hotel_cancels = [
        e.id for t, e in seen.events if e.sagaid == saga_id and e.type == "hotel.cancel"
    ]
    assert len(set(hotel_cancels)) == 2, "the late cancel has its own command id"


TERMINAL = {"saga.completed", "saga.compensated", "saga.failed", "saga.aborted"}


def lifecycle_late(seen: TopicRecorder, saga_id: str) -> list[tuple[str, str | None]]:
    return [(t, s) for t, s in lifecycle(seen, saga_id) if t.startswith("saga.step.late")]
