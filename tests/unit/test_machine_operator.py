"""Operator repairs (retry, skip, resolve), abort, and the pivot's point of no return."""

from __future__ import annotations

from dataclasses import asdict

from saga_fixtures import (
    ABORTED,
    CHARGE,
    CHARGED,
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    INVOICE,
    INVOICE_FAILED,
    INVOICED,
    NOTIFIED,
    NOTIFY,
    NOTIFY_FAILED,
    REFUND,
    REFUND_FAILED,
    REFUNDED,
    RELEASE,
    RESERVE,
    RESERVED,
    SCHEDULED,
    SHIP,
    SHIP_FAILED,
    STARTED,
    SUCCEEDED,
    ok_except,
    pivot_then_group,
    scripted,
    three_step,
    with_pivot,
)

from events.envelope import CloudEvent
from sagas.messages import Observed, Outcome
from sagas.state import StepStatus
from sagas.testing import SagaProbe, SagaTestKit

TERMINAL = {COMPLETED, COMPENSATED, FAILED, ABORTED}


def parked_on_refund() -> tuple[SagaTestKit, SagaProbe]:
    """A saga whose refund gave up after its two attempts: parked as failed."""
    kit = scripted(three_step(comp_retries=2), ok_except(ship=SHIP_FAILED, refund=REFUND_FAILED))
    saga = kit.start("o-1")
    kit.advance(60)
    saga.expect_status("failed").expect_commands(RESERVE, CHARGE, SHIP, REFUND, REFUND)
    return kit, saga


def answer(kit: SagaTestKit, command: CloudEvent, type_: str) -> Outcome:
    """Reply to one particular command (not necessarily the last one)."""
    return kit.deliver(command.sagaid, Observed(command.reply(type_, source="test")))


def terminal_events(saga: SagaProbe) -> list[str]:
    return [t for t in saga.lifecycle_types if t in TERMINAL]


# -- repairs of a saga parked while compensating ----------------------------------------


def test_parked_saga_says_why_in_its_lifecycle() -> None:
    kit, saga = parked_on_refund()
    assert saga.state.phase == "backward"
    failed = [e for e in kit.lifecycle if e.type == FAILED][-1]
    assert failed.data["phase"] == "backward"
    assert "charge" in failed.data["reason"]


def test_retry_after_the_participant_is_fixed_compensates() -> None:
    kit, saga = parked_on_refund()
    kit.on(REFUND).reply(REFUNDED)

    assert saga.retry() is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands(
        RESERVE, CHARGE, SHIP, REFUND, REFUND, REFUND, RELEASE
    )
    assert terminal_events(saga) == [FAILED, COMPENSATED]


def test_retry_gives_a_fresh_budget() -> None:
    kit, saga = parked_on_refund()

    saga.retry()
    kit.advance(60)
    # Two more attempts (the budget of the compensation), then parked again.
    saga.expect_status("failed").expect_commands(
        RESERVE, CHARGE, SHIP, REFUND, REFUND, REFUND, REFUND
    )


def test_skip_marks_the_undo_done_by_hand_and_keeps_the_reason() -> None:
    kit, saga = parked_on_refund()

    assert saga.skip("charge", "refunded by hand in the PSP console") is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands(
        RESERVE, CHARGE, SHIP, REFUND, REFUND, RELEASE
    )
    assert saga.state.steps[1].status is StepStatus.SKIPPED
    skips = [h for h in saga.state.history if h.event == "operator.skip"]
    assert [(h.step, h.detail) for h in skips] == [
        ("charge", "refunded by hand in the PSP console")
    ]


def test_skip_of_a_step_that_blocks_nothing_is_rejected() -> None:
    kit, saga = parked_on_refund()
    before = asdict(saga.state)

    assert saga.skip("reserve", "not the blocked one") is Outcome.REJECTED
    assert saga.skip("ship", "failed forward, nothing to undo") is Outcome.REJECTED
    assert asdict(saga.state) == before
    assert len(saga.commands) == 5


def test_resolve_ends_the_saga_where_it_was_heading() -> None:
    kit, saga = parked_on_refund()

    assert saga.resolve("refund and release done by hand") is Outcome.APPLIED
    saga.expect_status("compensated").expect_commands(RESERVE, CHARGE, SHIP, REFUND, REFUND)
    last = kit.lifecycle[-1]
    assert last.type == COMPENSATED
    assert last.data["resolved_by_operator"] == "refund and release done by hand"


def test_operator_repairs_apply_only_to_a_failed_saga() -> None:
    kit = scripted(three_step(), ok_except(ship=None))
    saga = kit.start("o-1")
    before = asdict(saga.state)

    assert saga.retry() is Outcome.REJECTED
    assert saga.skip("ship", "x") is Outcome.REJECTED
    assert saga.resolve("x") is Outcome.REJECTED
    assert asdict(saga.state) == before

    kit.on(SHIP).reply(SCHEDULED)
    saga.reply(SCHEDULED, to=SHIP)
    saga.expect_status("completed")
    assert saga.retry() is Outcome.REJECTED
    assert saga.resolve("x") is Outcome.REJECTED


# -- after the pivot --------------------------------------------------------------------


def parked_after_pivot() -> tuple[SagaTestKit, SagaProbe]:
    kit = scripted(with_pivot(), ok_except(invoice=INVOICE_FAILED))
    saga = kit.start("o-1")
    kit.advance(60)
    saga.expect_status("failed").expect_commands(RESERVE, CHARGE, SHIP, INVOICE, INVOICE, INVOICE)
    assert saga.state.phase == "forward"
    return kit, saga


def test_resolve_after_the_pivot_completes() -> None:
    kit, saga = parked_after_pivot()

    saga.resolve("invoice sent by hand")
    saga.expect_status("completed").expect_commands(
        RESERVE, CHARGE, SHIP, INVOICE, INVOICE, INVOICE
    )
    assert terminal_events(saga) == [FAILED, COMPLETED]


def test_retry_after_the_pivot_runs_the_step_again() -> None:
    kit, saga = parked_after_pivot()
    kit.on(INVOICE).reply(INVOICED)

    saga.retry()
    saga.expect_status("completed").expect_commands(
        RESERVE, CHARGE, SHIP, INVOICE, INVOICE, INVOICE, INVOICE
    )


def test_skip_after_the_pivot_moves_on() -> None:
    kit, saga = parked_after_pivot()

    saga.skip("invoice", "invoiced by hand")
    saga.expect_status("completed")
    assert COMPENSATING not in saga.lifecycle_types


def test_abort_after_the_pivot_is_rejected() -> None:
    kit = scripted(with_pivot(), ok_except(invoice=None))
    saga = kit.start("o-1")

    assert saga.abort("customer changed their mind") is Outcome.REJECTED
    saga.expect_status("running")
    saga.reply(INVOICED, to=INVOICE)
    saga.expect_status("completed").expect_commands(RESERVE, CHARGE, SHIP, INVOICE)


def test_parallel_stage_after_the_pivot_parks_once_and_never_compensates() -> None:
    kit = scripted(
        pivot_then_group(),
        {RESERVE: RESERVED, SHIP: SCHEDULED, INVOICE: INVOICE_FAILED, NOTIFY: NOTIFY_FAILED},
    )
    saga = kit.start("o-1")
    kit.advance(60)

    saga.expect_status("failed")
    assert terminal_events(saga) == [FAILED]
    assert RELEASE not in saga.command_types

    # A late "yes" for one branch does not turn the other branch's failure into an undo.
    first_invoice = next(c for c in saga.commands if c.type == INVOICE)
    assert answer(kit, first_invoice, INVOICED) is Outcome.APPLIED
    saga.expect_status("failed")
    assert RELEASE not in saga.command_types

    # Neither does skipping it while the other branch is still given up.
    kit2 = scripted(
        pivot_then_group(),
        {RESERVE: RESERVED, SHIP: SCHEDULED, INVOICE: INVOICE_FAILED, NOTIFY: NOTIFY_FAILED},
    )
    saga2 = kit2.start("o-2")
    kit2.advance(60)
    assert saga2.skip("invoice", "done by hand") is Outcome.APPLIED
    saga2.expect_status("failed")
    assert saga2.skip("notify", "done by hand") is Outcome.APPLIED
    saga2.expect_status("completed")
    assert RELEASE not in saga2.command_types


def test_parked_saga_still_tracks_the_branch_in_flight() -> None:
    kit = scripted(
        pivot_then_group(),
        {RESERVE: RESERVED, SHIP: SCHEDULED, INVOICE: INVOICE_FAILED, NOTIFY: None},
    )
    saga = kit.start("o-1")
    kit.advance(0.6)  # invoice has given up; notify has not answered yet
    saga.expect_status("failed")

    assert saga.reply(NOTIFIED, to=NOTIFY) is Outcome.APPLIED
    assert saga.state.steps[3].status is StepStatus.SUCCEEDED
    kit.on(INVOICE).reply(INVOICED)
    saga.retry()
    saga.expect_status("completed")
    assert saga.command_types.count(NOTIFY) == 1


def test_a_given_up_step_that_succeeds_after_all_resumes_the_saga() -> None:
    kit = scripted(with_pivot(), ok_except(invoice=None))
    saga = kit.start("o-1")
    kit.advance(60)
    saga.expect_status("failed")

    first_invoice = next(c for c in saga.commands if c.type == INVOICE)
    assert answer(kit, first_invoice, INVOICED) is Outcome.APPLIED
    saga.expect_status("completed")
    assert any(h.event == "resumed" for h in saga.state.history)


# -- abort ------------------------------------------------------------------------------


def test_abort_mid_flight_compensates_what_succeeded_and_what_is_in_doubt() -> None:
    kit = scripted(three_step(), ok_except(charge=None))
    saga = kit.start("o-1")

    assert saga.abort("customer cancelled") is Outcome.APPLIED
    saga.expect_status("aborted").expect_commands(RESERVE, CHARGE, REFUND, RELEASE)
    assert saga.lifecycle_types == [STARTED, SUCCEEDED, COMPENSATING, ABORTED]
    assert saga.state.abort_reason == "customer cancelled"

    # The charge that was in flight answers after all: the refund sent in doubt may have
    # come first, so another one follows; the saga stays aborted.
    assert saga.reply(CHARGED, to=CHARGE) is Outcome.APPLIED
    saga.expect_status("aborted").expect_commands(RESERVE, CHARGE, REFUND, RELEASE, REFUND)
    assert terminal_events(saga) == [ABORTED]


def test_abort_of_an_opted_out_in_doubt_step_undoes_only_what_succeeded() -> None:
    kit = scripted(three_step(charge_in_doubt=False), ok_except(charge=None))
    saga = kit.start("o-1")

    saga.abort()
    saga.expect_status("aborted").expect_commands(RESERVE, CHARGE, RELEASE)
    # ... and if the charge did happen, its late success is undone at once.
    assert saga.reply(CHARGED, to=CHARGE) is Outcome.APPLIED
    saga.expect_status("aborted").expect_commands(RESERVE, CHARGE, RELEASE, REFUND)
    assert terminal_events(saga) == [ABORTED]


def test_abort_while_a_retry_is_waiting_cancels_it() -> None:
    kit = scripted(three_step(retries=3), ok_except(reserve=None))
    saga = kit.start("o-1")
    kit.advance(5)  # the first attempt timed out; the retry waits 0.1 s

    saga.abort()
    kit.advance(60)
    saga.expect_status("aborted").expect_commands(RESERVE, RELEASE)


def test_abort_whose_undo_gives_up_ends_aborted_after_resolve() -> None:
    kit = scripted(three_step(comp_retries=1), ok_except(charge=None, refund=REFUND_FAILED))
    saga = kit.start("o-1")

    saga.abort()
    saga.expect_status("failed")
    saga.resolve("refund done by hand")
    saga.expect_status("aborted")
    assert terminal_events(saga) == [FAILED, ABORTED]


def test_abort_is_rejected_unless_running() -> None:
    kit = scripted(three_step(), ok_except(ship=SHIP_FAILED, refund=None))
    saga = kit.start("o-1")
    saga.expect_status("compensating")
    assert saga.abort() is Outcome.REJECTED

    done = scripted(three_step(), ok_except()).start("o-2")
    assert done.abort() is Outcome.REJECTED
    done.expect_status("completed")


# -- a pivot whose outcome is unknown ---------------------------------------------------


def test_a_pivot_that_times_out_parks_instead_of_compensating() -> None:
    kit = scripted(with_pivot(), ok_except(ship=None))
    saga = kit.start("o-1")
    kit.advance(60)

    saga.expect_status("failed").expect_commands(RESERVE, CHARGE, SHIP)
    assert "may have committed" in (saga.state.failure or "")


def test_a_late_success_of_a_parked_pivot_resumes_the_saga() -> None:
    kit = scripted(with_pivot(), ok_except(ship=None))
    saga = kit.start("o-1")
    kit.advance(60)
    saga.expect_status("failed")

    assert saga.reply(SCHEDULED, to=SHIP) is Outcome.APPLIED
    saga.expect_status("completed").expect_commands(RESERVE, CHARGE, SHIP, INVOICE)


def test_abort_of_a_parked_pivot_compensates_the_steps_before_it() -> None:
    kit = scripted(with_pivot(), ok_except(ship=None))
    saga = kit.start("o-1")
    kit.advance(60)

    assert saga.abort("carrier confirmed nothing shipped") is Outcome.APPLIED
    saga.expect_status("aborted").expect_commands(RESERVE, CHARGE, SHIP, REFUND, RELEASE)


def test_abort_while_the_pivot_is_in_flight_is_rejected() -> None:
    kit = scripted(with_pivot(), ok_except(ship=None))
    saga = kit.start("o-1")

    assert saga.abort("too late to ask") is Outcome.REJECTED
    saga.expect_status("running")
