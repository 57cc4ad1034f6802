"""The bank of the transfer saga: fraud check, debit, credit, reversal; money conserved."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import CloudEvent, new_event
from services.bank import contract as c
from services.bank.domain import BankState, handle, invariants

ACCOUNTS = {"alice": (1000, False), "bob": (100, False), "shut": (0, True)}


def cmd(
    type_: str, saga: str = "t-1", src: str = "alice", dst: str = "bob", amount: int = 300
) -> CloudEvent:
    data = {"transfer_id": saga, "from_account": src, "to_account": dst, "amount": amount}
    return new_event(type_, source="test", sagaid=saga, data=data)


def fresh() -> BankState:
    return BankState.open(ACCOUNTS, fraud_limit=5000)


def run(state: BankState, event: CloudEvent) -> tuple[BankState, CloudEvent]:
    new, outs = handle(state, event)
    assert len(outs) == 1 and outs[0].topic == "bank.replies"
    return new, outs[0].event


def test_a_transfer_moves_money_once() -> None:
    state, fraud = run(fresh(), cmd(c.FRAUD_CHECK))
    assert fraud.type == c.FRAUD_CLEARED
    state, debit = run(state, cmd(c.DEBIT))
    state, again = run(state, cmd(c.DEBIT))
    state, credit = run(state, cmd(c.CREDIT))
    assert (debit.type, credit.type) == (c.DEBITED, c.CREDITED) and again.data == debit.data
    assert invariants(state)["balances"] == {"alice": 700, "bob": 400, "shut": 0}
    assert invariants(state)["conserved"] and invariants(state)["in_flight"] == 0


def test_fraud_check_suspects_large_and_self_transfers() -> None:
    _, reply = run(fresh(), cmd(c.FRAUD_CHECK, amount=5001))
    assert reply.type == c.FRAUD_SUSPECTED and "fraud limit" in reply.data["reason"]
    _, reply = run(fresh(), cmd(c.FRAUD_CHECK, dst="alice"))
    assert reply.type == c.FRAUD_SUSPECTED


def test_debit_rejections_name_the_problem() -> None:
    _, reply = run(fresh(), cmd(c.DEBIT, src="bob", amount=101))
    assert reply.type == c.DEBIT_REJECTED and "insufficient funds in bob" in reply.data["reason"]
    _, reply = run(fresh(), cmd(c.DEBIT, src="shut"))
    assert "closed" in reply.data["reason"]
    _, reply = run(fresh(), cmd(c.DEBIT, src="ghost"))
    assert "unknown" in reply.data["reason"]


def test_closed_payee_rejects_the_credit_and_the_debit_is_reversed() -> None:
    state, _ = run(fresh(), cmd(c.DEBIT, dst="shut"))
    state, credit = run(state, cmd(c.CREDIT, dst="shut"))
    assert credit.type == c.CREDIT_REJECTED and "closed" in credit.data["reason"]
    assert invariants(state)["in_flight"] == 300 and invariants(state)["conserved"]
    state, reversed_ = run(state, cmd(c.REVERSE_DEBIT))
    assert reversed_.type == c.DEBIT_REVERSED and reversed_.data["reversed_amount"] == 300
    assert invariants(state)["balances"]["alice"] == 1000 and invariants(state)["conserved"]


def test_late_messages_cannot_create_money() -> None:
    state, _ = run(fresh(), cmd(c.REVERSE_DEBIT))  # compensation first (debit in doubt)
    state, late_debit = run(state, cmd(c.DEBIT))
    assert late_debit.type == c.DEBIT_REJECTED
    state, late_credit = run(state, cmd(c.CREDIT))
    assert late_credit.type == c.CREDIT_REJECTED
    state, _ = run(state, cmd(c.DEBIT, saga="t-2"))
    state, _ = run(state, cmd(c.CREDIT, saga="t-2"))
    state, refused = run(state, cmd(c.REVERSE_DEBIT, saga="t-2"))  # credit was in doubt
    assert refused.type == c.REVERSE_FAILED and "already credited" in refused.data["reason"]
    assert invariants(state)["conserved"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([c.DEBIT, c.CREDIT, c.REVERSE_DEBIT]),
            st.integers(0, 4),
            st.sampled_from(list(ACCOUNTS)),
            st.sampled_from(list(ACCOUNTS)),
            st.integers(1, 600),
        ),
        max_size=50,
    )
)
def test_money_is_conserved_and_no_balance_goes_negative(seq: list[Any]) -> None:
    state = fresh()
    for type_, saga, src, dst, amount in seq:
        state, _ = run(state, cmd(type_, f"t{saga}", src, dst, amount))
        inv = invariants(state)
        assert inv["conserved"] and inv["non_negative"] and inv["in_flight"] >= 0


def test_the_shipped_transfer_saga_reverses_the_debit_for_a_closed_payee() -> None:
    from sagas.participants.participant_store import ParticipantCore
    from sagas.testing import SagaTestKit
    from services import definitions

    bank = ParticipantCore(handle, fresh())

    def respond(command: CloudEvent) -> tuple[str, dict[str, Any]]:
        reply = bank.apply("bank.commands", command).outputs[0].event
        return reply.type, reply.data

    kit = SagaTestKit(definitions.load("bank_transfer"))
    for type_ in (c.FRAUD_CHECK, c.SCREEN, c.DEBIT, c.CREDIT, c.REVERSE_DEBIT):
        kit.on(type_).respond(respond)
    transfer = {"transfer_id": "t", "from_account": "alice", "amount": 250}
    kit.start("ok", {**transfer, "to_account": "bob"}).expect_status("completed")
    kit.start("shut", {**transfer, "to_account": "shut"}).expect_status(
        "compensated"
    ).expect_commands(c.FRAUD_CHECK, c.SCREEN, c.DEBIT, c.CREDIT, c.REVERSE_DEBIT)
    assert invariants(bank.state)["balances"] == {"alice": 750, "bob": 350, "shut": 0}
