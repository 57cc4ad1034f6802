"""`sagas.routing.route`: which definition and state-machine message a decoded record is,
or why it goes to the dead-letter topic. Plain values, no broker."""

from __future__ import annotations

import dataclasses

from events.envelope import CloudEvent, new_event
from events.topics import Topics
from sagas import control
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.messages import Abort, Observed, StartSaga
from sagas.routing import Reject, Route, route
from sagas.state import SagaState
from tests.unit.saga_fixtures import RESERVED, three_step

ENGINE = Topics()
CONTROL, STARTS = ENGINE.control, ENGINE.starts
REGISTRY = DefinitionRegistry([three_step()])


def routed(topic: str, event: CloudEvent, state: SagaState | None = None) -> Route | Reject:
    return route(REGISTRY, REGISTRY.triggers(), ENGINE, topic, event, state)


def running(sid: str = "s-1") -> SagaState:
    decision = decide(three_step(), None, StartSaga(sid, {"order_id": "o"}), 1.0)
    assert decision.state is not None
    return decision.state


def test_a_trigger_starts_its_saga_and_once_started_is_observed_by_it() -> None:
    placed = new_event("order.placed", source="t", sagaid="s-1", data={"order_id": "o"})
    first = routed("orders", placed)
    assert isinstance(first, Route) and first.definition.name == "order"
    assert first.message == StartSaga("s-1", {"order_id": "o"})
    again = routed("orders", placed, running())
    assert isinstance(again, Route) and again.message == Observed(placed)


def test_a_start_on_the_control_topic_names_its_definition() -> None:
    start = control.start_request("order", {}, saga_id="s-1")
    ok = routed(CONTROL, start)
    assert isinstance(ok, Route) and isinstance(ok.message, StartSaga)
    unknown = routed(CONTROL, control.start_request("refund", {}, saga_id="s-2"))
    assert isinstance(unknown, Reject) and unknown.reason == "unknown-saga-definition"


def test_saga_starts_takes_starts_and_refuses_everything_else() -> None:
    start = routed(STARTS, control.start_request("order", {"order_id": "o"}, saga_id="s-1"))
    assert isinstance(start, Route) and start.message == StartSaga("s-1", {"order_id": "o"})
    unknown = routed(STARTS, control.start_request("refund", {}, saga_id="s-2"))
    assert isinstance(unknown, Reject) and unknown.reason == "unknown-saga-definition"
    # an operator command there would be applied out of order with the saga's replies
    abort = control.operator_command(control.ABORT, "s-1", reason="r")
    assert routed(STARTS, abort, running()) == Reject(
        "invalid-start",
        f"{control.ABORT!r} for saga 's-1' on {STARTS}, which takes only {control.START!r} "
        f"requests; send operator commands and signals to {CONTROL}",
    )
    signal = control.signal("s-1", "approved", {}, source="t")
    refused = routed(STARTS, signal, running())
    assert isinstance(refused, Reject) and refused.reason == "invalid-start"
    broken = new_event(control.START, source="t", sagaid="s-3", data={})
    assert routed(STARTS, broken) == routed(CONTROL, broken)  # the same invalid-control


def test_an_operator_command_goes_to_the_sagas_definition() -> None:
    abort = control.operator_command(control.ABORT, "s-1", reason="r")
    assert routed(CONTROL, abort) == Reject(
        "unknown-saga",
        f"{control.ABORT!r} (id {abort.id!r}) is for saga 's-1', which this coordinator "
        f"has never started; check the record's sagaid and key",
    )
    found = routed(CONTROL, abort, running())
    assert isinstance(found, Route) and found.message == Abort("r")


def test_what_cannot_be_routed_says_why() -> None:
    reply = new_event(RESERVED, source="t", sagaid="s-1", causationid="c")
    assert isinstance(r := routed("inventory.replies", reply), Reject)
    assert r.reason == "unknown-saga"
    bad_id = new_event("order.placed", source="t", sagaid="has space", data={})
    assert isinstance(r := routed("orders", bad_id), Reject) and r.reason == "invalid-saga-id"
    garbled = new_event(control.START, source="t", sagaid="s-1", data={"saga": 7})
    assert isinstance(r := routed(CONTROL, garbled), Reject) and r.reason == "invalid-control"
    other_version = dataclasses.replace(running(), version=9)
    assert isinstance(r := routed("inventory.replies", reply, other_version), Reject)
    assert r.reason == "unknown-saga-definition" and "'s-1'" in r.detail
