"""The stored form of a saga state: compact, exact-size, and loaded back unchanged."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from sagas.state import SagaState, StepState, StepStatus
from sagas.state_codec import dump_state, load_state
from tests.unit.saga_fixtures import (
    DECLINED,
    ok_except,
    scripted,
    three_step,
)


@pytest.mark.parametrize(
    ("script", "at_most_steps"),
    [
        (ok_except(ship=None), 3),  # parked on ship: deadline armed, ship running
        (ok_except(), 3),  # completed
        (ok_except(charge=DECLINED), 2),  # compensated
    ],
)
def test_a_state_loads_back_equal_to_what_was_dumped(script: dict, at_most_steps: int) -> None:
    kit = scripted(three_step(), script)
    probe = kit.start("s-1", {"order_id": "o-1", "note": None})
    state = probe.state
    raw = dump_state(state)

    assert load_state(raw) == state
    doc = orjson.loads(raw)
    assert doc["context"] == {"order_id": "o-1", "note": None}, "user data keeps its nulls"
    assert None not in doc.values(), "unset optional fields are left out"
    assert doc["status"] == state.status.value, "status stays readable without loading"


def test_steps_not_reached_are_stored_empty() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    raw = dump_state(kit.start("s-2", {}).state)
    steps = orjson.loads(raw)["steps"]
    assert steps[1]["status"] == "running" and steps[2] == {}, "ship is not reached yet"


def test_stored_bytes_hold_no_hidden_buffer() -> None:
    """orjson's output keeps its 8 KiB work buffer; the table must keep exact-size bytes."""
    state = scripted(three_step(), ok_except(ship=None)).start("s-3", {}).state
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [dump_state(state) for _ in range(200)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown / len(kept) < 2 * len(kept[0]) + 200, f"{grown / len(kept):.0f} bytes per state"


def test_the_stored_form_is_pinned_byte_for_byte() -> None:
    """Tables and changelogs written by earlier releases hold this form, and the census
    and listings read its head and its ``stage``/times by position (`sagas.table_codec`)."""
    state = SagaState(
        saga_id="s-4",
        name="n",
        version=1,
        steps=[StepState(), StepState(status=StepStatus.RUNNING, attempt=2, started_at=1.5)],
        started_at=1.0,
        updated_at=2.0,
    )
    assert dump_state(state) == (
        b'{"saga_id":"s-4","name":"n","version":1,"status":"running","phase":"forward",'
        b'"context":{},"stage":0,"started_at":1.0,"updated_at":2.0,"issued":{},"timers":{},'
        b'"compensation_plan":[],"held":[],"lifecycle_seq":0,"history":[],'
        b'"steps":[{},{"status":"running","attempt":2,"started_at":1.5}]}'
    )
    assert load_state(dump_state(state)) == state
