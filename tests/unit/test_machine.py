"""The saga state machine, end to end through the test kit: outcomes a user cares about.

Each scenario scripts the participants, starts one saga, lets virtual time run, and
checks the terminal status, the commands sent (in order) and the lifecycle events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from saga_fixtures import (
    CHARGE,
    CHARGED,
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    DECLINED,
    FAILED,
    INVOICE,
    INVOICE_FAILED,
    INVOICED,
    REFUND,
    REFUND_FAILED,
    REFUNDED,
    REJECTED,
    RELEASE,
    RELEASED,
    RESERVE,
    RESERVED,
    SHIP,
    SHIP_FAILED,
    STARTED,
    STEP_FAILED,
    SUCCEEDED,
    Answer,
    ok_except,
    scripted,
    three_step,
    with_parallel_group,
    with_pivot,
)

from sagas.definition import SagaDefinition


@dataclass
class Scenario:
    id: str
    definition: Callable[[], SagaDefinition]
    script: dict[str, Answer | list[Answer]]
    status: str
    commands: list[str]
    lifecycle: list[str]
    advance: float = 120.0
    context: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "happy path",
        three_step,
        ok_except(),
        "completed",
        [RESERVE, CHARGE, SHIP],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED],
    ),
    # A business "no" at step k undoes exactly the steps before k, last first.
    Scenario(
        "step 1 declined",
        three_step,
        ok_except(reserve=REJECTED),
        "compensated",
        [RESERVE],
        [STARTED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step 2 declined",
        three_step,
        ok_except(charge=DECLINED),
        "compensated",
        [RESERVE, CHARGE, RELEASE],
        [STARTED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step 3 declined",
        three_step,
        ok_except(ship=SHIP_FAILED),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    # A silent step is retried until its budget is spent; a step whose outcome is in
    # doubt (it may have acted without answering) is compensated too.
    Scenario(
        "step 1 times out",
        lambda: three_step(retries=2),
        ok_except(reserve=None),
        "compensated",
        [RESERVE, RESERVE, RELEASE],
        [STARTED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step 2 times out",
        lambda: three_step(retries=2),
        ok_except(charge=None),
        "compensated",
        [RESERVE, CHARGE, CHARGE, REFUND, RELEASE],
        [STARTED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step 3 times out",
        lambda: three_step(retries=2),
        ok_except(ship=None),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step 2 with in-doubt opt-out times out",
        lambda: three_step(charge_in_doubt=False),
        ok_except(charge=None),
        "compensated",
        [RESERVE, CHARGE, RELEASE],
        [STARTED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "timeout then success on the retry",
        lambda: three_step(retries=2),
        ok_except(reserve=[None, RESERVED]),
        "completed",
        [RESERVE, RESERVE, CHARGE, SHIP],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED],
    ),
    Scenario(
        "compensation fails, then succeeds on its retry",
        three_step,
        ok_except(ship=SHIP_FAILED, refund=[REFUND_FAILED, REFUNDED]),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "compensation times out, then succeeds on its retry",
        three_step,
        ok_except(ship=SHIP_FAILED, refund=[None, REFUNDED]),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "compensation gives up: parked as failed",
        lambda: three_step(comp_retries=2),
        ok_except(ship=SHIP_FAILED, refund=REFUND_FAILED),
        "failed",
        [RESERVE, CHARGE, SHIP, REFUND, REFUND],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, FAILED],
    ),
    # Parallel group: both branches are sent at once; one "no" undoes the other branch.
    Scenario(
        "parallel branch declined",
        with_parallel_group,
        ok_except(charge=DECLINED),
        "compensated",
        [RESERVE, CHARGE, RELEASE],
        [STARTED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "parallel branch declined while the other is still running",
        with_parallel_group,
        ok_except(reserve=REJECTED, charge=None),
        "compensated",
        [RESERVE, CHARGE, REFUND],
        [STARTED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "step after a parallel group declined",
        with_parallel_group,
        ok_except(ship=SHIP_FAILED),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    # Pivot: before it the saga can go back; after it, only forward.
    Scenario(
        "pivot declined: the steps before it are compensated",
        with_pivot,
        ok_except(ship=SHIP_FAILED),
        "compensated",
        [RESERVE, CHARGE, SHIP, REFUND, RELEASE],
        [STARTED, SUCCEEDED, SUCCEEDED, STEP_FAILED, COMPENSATING, COMPENSATED],
    ),
    Scenario(
        "failure after the pivot is retried, never compensated",
        with_pivot,
        ok_except(invoice=[INVOICE_FAILED, INVOICED]),
        "completed",
        [RESERVE, CHARGE, SHIP, INVOICE, INVOICE],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED],
    ),
    Scenario(
        "timeout after the pivot is retried",
        with_pivot,
        ok_except(invoice=[None, INVOICED]),
        "completed",
        [RESERVE, CHARGE, SHIP, INVOICE, INVOICE],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED],
    ),
    Scenario(
        "after the pivot, exhausted retries park the saga",
        with_pivot,
        ok_except(invoice=INVOICE_FAILED),
        "failed",
        [RESERVE, CHARGE, SHIP, INVOICE, INVOICE, INVOICE],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, STEP_FAILED, FAILED],
    ),
    Scenario(
        "replies are merged into the context",
        three_step,
        ok_except(
            reserve=(RESERVED, {"reservation": "r-1"}), charge=(CHARGED, {"payment_id": "p-1"})
        ),
        "completed",
        [RESERVE, CHARGE, SHIP],
        [STARTED, SUCCEEDED, SUCCEEDED, SUCCEEDED, COMPLETED],
        context={"order_id": "o-1", "reservation": "r-1", "payment_id": "p-1"},
    ),
]


@pytest.mark.parametrize("scn", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(scn: Scenario) -> None:
    kit = scripted(scn.definition(), scn.script)
    saga = kit.start("o-1", {"order_id": "o-1"})
    kit.advance(scn.advance)

    saga.expect_status(scn.status).expect_commands(*scn.commands)
    assert saga.lifecycle_types == scn.lifecycle
    for key, value in scn.context.items():
        assert saga.state.context[key] == value


def test_failure_after_the_pivot_reports_phase_forward() -> None:
    kit = scripted(with_pivot(), ok_except(invoice=INVOICE_FAILED))
    saga = kit.start("o-1")
    kit.advance(60)

    saga.expect_status("failed")
    assert saga.state.phase == "forward"
    parked = [e for e in kit.lifecycle if e.type == FAILED]
    assert parked[-1].data["phase"] == "forward"
    assert "invoice" in parked[-1].data["reason"]


def test_parallel_compensation_issues_every_undo_at_once() -> None:
    kit = scripted(
        three_step(parallel_comp=True), ok_except(ship=SHIP_FAILED, refund=None, release=None)
    )
    saga = kit.start("o-1")

    # Nobody has answered the undos yet, and both are already out.
    saga.expect_status("compensating").expect_commands(RESERVE, CHARGE, SHIP, REFUND, RELEASE)
    saga.reply(RELEASED, to=RELEASE)
    saga.expect_status("compensating")
    saga.reply(REFUNDED, to=REFUND)
    saga.expect_status("compensated")


def test_reverse_compensation_waits_for_each_undo() -> None:
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED, refund=None, release=None))
    saga = kit.start("o-1")

    saga.expect_status("compensating").expect_commands(RESERVE, CHARGE, SHIP, REFUND)
    saga.reply(REFUNDED, to=REFUND)
    saga.expect_commands(RESERVE, CHARGE, SHIP, REFUND, RELEASE)
    saga.reply(RELEASED, to=RELEASE)
    saga.expect_status("compensated")


def test_compensation_sees_the_context_of_earlier_replies() -> None:
    kit = scripted(
        three_step(), ok_except(charge=(CHARGED, {"payment_id": "p-9"}), ship=SHIP_FAILED)
    )
    saga = kit.start("o-1", {"order_id": "o-1"})

    refund = next(c for c in saga.commands if c.type == REFUND)
    assert refund.data["payment_id"] == "p-9"
    assert refund.data["order_id"] == "o-1"


def test_every_command_carries_the_saga_id_and_goes_to_its_topic() -> None:
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED))
    kit.start("o-1")

    topics = [(o.topic, o.event.type) for o in kit.sent]
    assert topics == [
        ("inventory.commands", RESERVE),
        ("payment.commands", CHARGE),
        ("shipping.commands", SHIP),
        ("payment.commands", REFUND),
        ("inventory.commands", RELEASE),
    ]
    assert {o.event.sagaid for o in kit.sent} == {"o-1"}
