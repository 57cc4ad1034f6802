"""Late effects (issue 22): a success after the saga gave up on its step is undone at once,
and a choreography's events resolve their steps in step order."""

from __future__ import annotations

from saga_fixtures import COMPENSATED, FAILED, STARTED, STEP_FAILED, SUCCEEDED

from sagas.builder import saga
from sagas.definition import SagaDefinition
from sagas.messages import Outcome
from sagas.retry import RetryPolicy
from sagas.testing import SagaProbe, SagaTestKit

FLIGHT_BOOKED, FLIGHT_CANCEL, FLIGHT_CANCELLED = (
    "flight.booked",
    "flight.cancel",
    "flight.cancelled",
)
HOTEL_BOOKED, HOTEL_FAILED, HOTEL_CANCEL, HOTEL_CANCELLED, HOTEL_CANCEL_FAILED = (
    "hotel.booked",
    "hotel.failed",
    "hotel.cancel",
    "hotel.cancelled",
    "hotel.cancel_failed",
)
CAR_BOOKED, CAR_FAILED, CAR_CANCEL, CAR_CANCELLED = (
    "car.booked",
    "car.failed",
    "car.cancel",
    "car.cancelled",
)
LATE, LATE_UNDONE = "saga.step.late_succeeded", "saga.step.late_compensated"
TERMINAL = {"saga.completed", COMPENSATED, FAILED, "saga.aborted"}


def trip(*, hotel_in_doubt: bool = True, car_undo: bool = True) -> SagaDefinition:
    """flight -> hotel -> car (the pivot), every step choreographed."""
    b = saga("trip").triggered_by("trip.requested", topic="trips")
    hotel = (
        b.step("flight")
        .observes("flight.events", success=FLIGHT_BOOKED)
        .compensate(FLIGHT_CANCEL, topic="flight.commands", success=FLIGHT_CANCELLED)
        .timeout(5)
        .step("hotel")
        .observes("hotel.events", success=HOTEL_BOOKED, failure=HOTEL_FAILED)
        .compensate(
            HOTEL_CANCEL,
            topic="hotel.commands",
            success=HOTEL_CANCELLED,
            failure=HOTEL_CANCEL_FAILED,
            retry=RetryPolicy(attempts=2, initial=0.5),
        )
        .timeout(5)
    )
    if not hotel_in_doubt:
        hotel.in_doubt_needs_no_compensation()
    car = b.step("car").pivot().observes("car.events", success=CAR_BOOKED, failure=CAR_FAILED)
    if car_undo:
        car.compensate(CAR_CANCEL, topic="car.commands", success=CAR_CANCELLED)
    return car.timeout(5).build()


def kit_for(definition: SagaDefinition) -> SagaTestKit:
    kit = SagaTestKit(definition)
    kit.on(FLIGHT_CANCEL).reply(FLIGHT_CANCELLED)
    kit.on(HOTEL_CANCEL).reply(HOTEL_CANCELLED)
    kit.on(CAR_CANCEL).reply(CAR_CANCELLED)
    return kit


def lifecycle(kit: SagaTestKit, saga_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.data.get("step")) for e in kit.lifecycle if e.sagaid == saga_id]


def silent_hotel_then_compensated(kit: SagaTestKit) -> SagaProbe:
    trip_saga = kit.start("t-1")
    kit.publish("t-1", FLIGHT_BOOKED, {"flight": "F-1"})
    kit.advance(5)  # the hotel says nothing by its deadline
    return trip_saga.expect_status("compensated")


def test_late_success_after_in_doubt_cancel_and_its_downstream_are_undone() -> None:
    for in_doubt in (True, False):  # the two paths of the issue end alike
        kit = kit_for(trip(hotel_in_doubt=in_doubt))
        trip_saga = silent_hotel_then_compensated(kit)
        cancels_before = [HOTEL_CANCEL] if in_doubt else []
        trip_saga.expect_commands(*cancels_before, FLIGHT_CANCEL)

        # The hotel books after all, and the car service books in reaction to it.
        assert kit.publish("t-1", HOTEL_BOOKED, {"hotel": "H-1"}) is Outcome.APPLIED
        assert kit.publish("t-1", CAR_BOOKED, {"car": "C-1"}) is Outcome.APPLIED

        trip_saga.expect_status("compensated").expect_commands(
            *cancels_before, FLIGHT_CANCEL, HOTEL_CANCEL, CAR_CANCEL
        )
        hotel_cancels = [c for c in trip_saga.commands if c.type == HOTEL_CANCEL]
        assert len({c.id for c in hotel_cancels}) == len(hotel_cancels)
        assert hotel_cancels[-1].data["hotel"] == "H-1"  # the cancel names what to undo
        late = [(t, s) for t, s in lifecycle(kit, "t-1") if t in (LATE, LATE_UNDONE)]
        assert late == [
            (LATE, "hotel"),
            (LATE_UNDONE, "hotel"),
            (LATE, "car"),
            (LATE_UNDONE, "car"),
        ]
        assert [t for t, _ in lifecycle(kit, "t-1") if t in TERMINAL] == [COMPENSATED]
        steps = trip_saga.state.steps
        assert [(s.status.value, s.late, s.late_undone) for s in steps[1:]] == [
            ("compensated", 1, 1),
            ("compensated", 1, 1),
        ]
        # Redelivered, the same successes change nothing.
        assert kit.publish("t-1", HOTEL_BOOKED, {"hotel": "H-1"}) is Outcome.DUPLICATE
        assert kit.publish("t-1", CAR_BOOKED, {"car": "C-1"}) is Outcome.DUPLICATE


def test_success_while_the_in_doubt_cancel_is_in_flight_gets_another_cancel() -> None:
    kit = SagaTestKit(trip())
    kit.on(FLIGHT_CANCEL).reply(FLIGHT_CANCELLED)
    trip_saga = kit.start("t-1")
    kit.publish("t-1", FLIGHT_BOOKED)
    kit.advance(5)
    trip_saga.expect_status("compensating").expect_commands(HOTEL_CANCEL)

    # The booking may have happened after the hotel answered that cancel as a no-op.
    assert kit.publish("t-1", HOTEL_BOOKED) is Outcome.APPLIED
    trip_saga.expect_commands(HOTEL_CANCEL)
    first = trip_saga.commands[0]
    assert kit.publish("t-1", HOTEL_CANCELLED, causationid=first.id) is Outcome.APPLIED
    trip_saga.expect_commands(HOTEL_CANCEL, HOTEL_CANCEL)
    # A repeat of the first attempt's answer does not settle the second.
    assert kit.publish("t-1", HOTEL_CANCELLED, causationid=first.id) is Outcome.DUPLICATE
    trip_saga.expect_status("compensating")
    second = trip_saga.commands[1]
    assert kit.publish("t-1", HOTEL_CANCELLED, causationid=second.id) is Outcome.APPLIED
    trip_saga.expect_status("compensated").expect_commands(
        HOTEL_CANCEL, HOTEL_CANCEL, FLIGHT_CANCEL
    )


def test_late_cancel_that_gives_up_parks_the_saga() -> None:
    kit = SagaTestKit(trip())
    kit.on(FLIGHT_CANCEL).reply(FLIGHT_CANCELLED)
    kit.on(HOTEL_CANCEL).reply(HOTEL_CANCELLED, times=1).reply(HOTEL_CANCEL_FAILED)
    trip_saga = silent_hotel_then_compensated(kit)

    kit.publish("t-1", HOTEL_BOOKED)
    kit.advance(5)  # the retry of the late cancel fails too
    trip_saga.expect_status("failed")
    assert [t for t, _ in lifecycle(kit, "t-1") if t in TERMINAL] == [COMPENSATED, FAILED]
    assert trip_saga.state.steps[1].status.value == "compensation_failed"


def test_late_success_of_a_step_with_nothing_to_undo_is_told() -> None:
    kit = kit_for(trip(car_undo=False))
    trip_saga = silent_hotel_then_compensated(kit)
    kit.publish("t-1", HOTEL_BOOKED)

    assert kit.publish("t-1", CAR_BOOKED) is Outcome.APPLIED
    told = [e for e in kit.lifecycle if e.type == LATE and e.data["step"] == "car"]
    assert [e.data["action"] for e in told] == ["nothing_to_undo"]
    trip_saga.expect_status("compensated")


def test_later_steps_events_wait_for_the_earlier_steps() -> None:
    kit = kit_for(trip())
    trip_saga = kit.start("t-1")
    # The car's and hotel's events overtake the flight's (different topics).
    assert kit.publish("t-1", CAR_BOOKED) is Outcome.APPLIED
    assert kit.publish("t-1", HOTEL_BOOKED) is Outcome.APPLIED
    assert kit.publish("t-1", CAR_BOOKED) is Outcome.DUPLICATE
    trip_saga.expect_status("running")
    kit.publish("t-1", FLIGHT_BOOKED)

    trip_saga.expect_status("completed").expect_commands()
    assert lifecycle(kit, "t-1") == [
        (STARTED, None),
        (SUCCEEDED, "flight"),
        (SUCCEEDED, "hotel"),
        (SUCCEEDED, "car"),
        ("saga.completed", None),
    ]


def test_held_event_of_a_step_never_reached_is_a_late_effect() -> None:
    kit = kit_for(trip())
    trip_saga = kit.start("t-1")
    kit.publish("t-1", FLIGHT_BOOKED)
    kit.publish("t-1", CAR_BOOKED)  # held: the hotel has not answered
    kit.publish("t-1", HOTEL_FAILED)

    trip_saga.expect_status("compensated").expect_commands(CAR_CANCEL, FLIGHT_CANCEL)
    assert lifecycle(kit, "t-1")[:3] == [
        (STARTED, None),
        (SUCCEEDED, "flight"),
        (STEP_FAILED, "hotel"),
    ]
