"""The transfer saga (issue 20): sanctions screening, and a person's approval above the
threshold; money is conserved whatever the person does or fails to do."""

from __future__ import annotations

from typing import Any

import pytest

from events.envelope import CloudEvent
from sagas.messages import Outcome
from sagas.participants.participant_store import ParticipantCore
from sagas.testing import SagaTestKit
from services import definitions
from services.bank import contract as c
from services.bank.domain import BankState, handle, invariants

HOUR = 3600.0
ACCOUNTS = {"alice": (1_000_000, False), "bob": (0, False), "mallory": (0, False)}


def bank_kit() -> tuple[SagaTestKit, ParticipantCore[BankState]]:
    bank = ParticipantCore(handle, BankState.open(ACCOUNTS, 2_000_000, frozenset({"mallory"})))

    def respond(command: CloudEvent) -> tuple[str, dict[str, Any]]:
        reply = bank.apply("bank.commands", command).outputs[0].event
        return reply.type, reply.data

    kit = SagaTestKit(definitions.load("bank_transfer"))
    for type_ in (c.FRAUD_CHECK, c.SCREEN, c.DEBIT, c.CREDIT, c.REVERSE_DEBIT):
        kit.on(type_).respond(respond)
    return kit, bank


def transfer(amount: int, to: str = "bob") -> dict[str, Any]:
    return {"transfer_id": "t", "from_account": "alice", "to_account": to, "amount": amount}


def test_a_small_transfer_needs_no_person() -> None:
    kit, bank = bank_kit()
    saga = kit.start("small", transfer(25_000)).expect_status("completed")
    assert saga.state.steps[3].status.value == "skipped"
    assert invariants(bank.state)["balances"]["bob"] == 25_000


def test_screening_stops_a_transfer_to_a_sanctioned_account_before_any_money_moves() -> None:
    kit, bank = bank_kit()
    saga = kit.start("s", transfer(25_000, to="mallory")).expect_status("compensated")
    saga.expect_commands(c.FRAUD_CHECK, c.SCREEN)
    assert "sanctions list: mallory" in (saga.state.failure or "")


@pytest.mark.parametrize(
    ("answer", "status", "bob"),
    [
        ((c.TRANSFER_APPROVED, {"approved_by": "ops-kim"}), "completed", 400_000),
        ((c.TRANSFER_DECLINED, {"reason": "unusual"}), "compensated", 0),
        (None, "compensated", 0),  # nobody answers within the day
    ],
)
def test_a_large_transfer_waits_for_a_person_and_money_is_conserved(
    answer: tuple[str, dict[str, Any]] | None, status: str, bob: int
) -> None:
    kit, bank = bank_kit()
    saga = kit.start("large", transfer(400_000))
    assert saga.state.steps[3].status.value == "running"
    assert invariants(bank.state)["in_flight"] == 400_000
    if answer is not None:
        assert kit.publish("large", *answer) is Outcome.APPLIED
    kit.advance(24 * HOUR + 1)
    saga.expect_status(status)
    books = invariants(bank.state)
    assert books["conserved"] and books["in_flight"] == 0
    assert books["balances"]["bob"] == bob
