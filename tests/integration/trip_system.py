"""A small travel-booking system for coordinator tests: 3 steps, orchestrated and choreographed.

Participants decide per saga from its context: ``{"car": "ok" | "fail" | "silent"}``.
"""

from __future__ import annotations

from typing import Any

from events.envelope import CloudEvent

ORCHESTRATED = """
name: trip
version: 1
steps:
  - name: hotel
    command: {{type: hotel.book, topic: {p}hotel.commands}}
    reply_topic: {p}hotel.replies
    success: [hotel.booked]
    failure: [hotel.unavailable]
    compensation: {{type: hotel.cancel, topic: {p}hotel.commands, success: [hotel.cancelled]}}
    timeout: {timeout}
  - name: flight
    command: {{type: flight.book, topic: {p}flight.commands}}
    reply_topic: {p}flight.replies
    success: [flight.booked]
    failure: [flight.full]
    compensation: {{type: flight.cancel, topic: {p}flight.commands, success: [flight.cancelled]}}
    timeout: {timeout}
  - name: car
    command: {{type: car.rent, topic: {p}car.commands}}
    reply_topic: {p}car.replies
    success: [car.rented]
    failure: [car.unavailable]
    timeout: {car_timeout}
"""

CHOREOGRAPHED = """
name: trip-choreo
version: 1
trigger: {{topic: {p}trips, type: trip.requested}}
steps:
  - name: hotel
    observes: {p}hotel.events
    success: [hotel.booked]
    failure: [hotel.unavailable]
    compensation: {{type: hotel.cancel, topic: {p}hotel.commands, reply_topic: {p}hotel.replies,
                    success: [hotel.cancelled]}}
    timeout: {timeout}
  - name: flight
    observes: {p}flight.events
    success: [flight.booked]
    failure: [flight.full]
    compensation: {{type: flight.cancel, topic: {p}flight.commands, reply_topic: {p}flight.replies,
                    success: [flight.cancelled]}}
    timeout: {timeout}
  - name: car
    observes: {p}car.events
    success: [car.rented]
    failure: [car.unavailable]
    timeout: {car_timeout}
"""


def definitions(prefix: str, *, timeout: float = 5, car_timeout: float = 2.5) -> str:
    fmt = {"p": prefix, "timeout": timeout, "car_timeout": car_timeout}
    return "sagas:\n" + "\n".join(
        "  - " + text.format(**fmt).strip().replace("\n", "\n    ")
        for text in (ORCHESTRATED, CHOREOGRAPHED)
    )


def act(service: str, success: str, failure: str):  # type: ignore[no-untyped-def]
    """A participant's decision for the forward action; compensations always succeed."""

    def handle(message: CloudEvent) -> tuple[str, dict[str, Any]] | None:
        if message.type.endswith(".cancel"):
            return (f"{service}.cancelled", {})
        mode = message.data.get(service, "ok")
        if mode == "silent":
            return None
        if mode == "fail":
            return (failure, {"reason": "scripted failure"})
        return (success, {f"{service}_ref": f"{service}-{message.sagaid[:8]}"})

    return handle
