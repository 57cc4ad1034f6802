"""A bank for the transfer saga: accounts with balances, some closed. Pure: `handle`.

fraud check -> debit the payer -> credit the payee; a closed payee account
rejects the credit and the saga reverses the debit. Each saga debits and
credits at most once. A reversal before the debit is a remembered no-op that
blocks the late debit; a credit needs a standing debit, and a reversal is
refused once the payee is credited: an answer that comes late cannot create
money. The sum of balances plus what is in flight (debited, not yet credited
or reversed) never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from immutables import Map

from events.envelope import CloudEvent, derived_id
from sagas.participants.participant import Handler, Outgoing
from services.bank.contract import (
    CREDIT,
    CREDIT_REJECTED,
    CREDITED,
    DEBIT,
    DEBIT_REJECTED,
    DEBIT_REVERSED,
    DEBITED,
    FRAUD_CHECK,
    FRAUD_CLEARED,
    FRAUD_SUSPECTED,
    REVERSE_DEBIT,
    REVERSE_FAILED,
    SCREEN,
    SCREENED,
    SCREENING_HIT,
    SOURCE,
    TransferRequested,
)
from services.common import answer, refuse
from services.topics import DEFAULT_TOPICS, ServiceTopics


@dataclass(frozen=True, slots=True)
class AccountState:
    balance: int
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Movement:
    account: str | None
    amount: int
    status: Literal["done", "reversed"]


@dataclass(frozen=True, slots=True)
class BankState:
    initial_total: int
    fraud_limit: int
    accounts: Map[str, AccountState]
    debits: Map[str, Movement]  # by saga id
    credits: Map[str, Movement]  # by saga id
    #: accounts on a sanctions list: no transfer from or to them
    sanctioned: frozenset[str] = frozenset()

    @classmethod
    def open(
        cls,
        accounts: Mapping[str, tuple[int, bool]],
        fraud_limit: int,
        sanctioned: frozenset[str] = frozenset(),
    ) -> BankState:
        state = Map({a: AccountState(b, c) for a, (b, c) in accounts.items()})
        total = sum(b for b, _ in accounts.values())
        return cls(total, fraud_limit, state, Map(), Map(), sanctioned)


Result = tuple[BankState, str, dict[str, Any]]


def fraud_check(state: BankState, t: TransferRequested) -> Result:
    if t.amount > state.fraud_limit:
        reason = f"amount {t.amount} is over the fraud limit {state.fraud_limit}"
        return refuse(state, FRAUD_SUSPECTED, reason)
    if t.from_account == t.to_account:
        return state, FRAUD_SUSPECTED, {"reason": "payer and payee are the same account"}
    return state, FRAUD_CLEARED, {}


def screen(state: BankState, t: TransferRequested) -> Result:
    hits = sorted({t.from_account, t.to_account} & state.sanctioned)
    if hits:
        return refuse(state, SCREENING_HIT, f"on the sanctions list: {', '.join(hits)}")
    return state, SCREENED, {}


def debit(state: BankState, saga_id: str, account: str, amount: int) -> Result:
    done = state.debits.get(saga_id)
    if done is not None:
        if done.status == "reversed":
            return state, DEBIT_REJECTED, {"reason": "the debit was already reversed"}
        return state, DEBITED, _debited(saga_id, done)
    acc = state.accounts.get(account)
    if acc is None or acc.closed:
        why = "unknown" if acc is None else "closed"
        return state, DEBIT_REJECTED, {"reason": f"account {account} is {why}"}
    if acc.balance < amount:
        reason = f"insufficient funds in {account}: balance {acc.balance}, wanted {amount}"
        return refuse(state, DEBIT_REJECTED, reason)
    move = Movement(account, amount, "done")
    accounts = state.accounts.set(account, replace(acc, balance=acc.balance - amount))
    state = replace(state, accounts=accounts, debits=state.debits.set(saga_id, move))
    return state, DEBITED, _debited(saga_id, move)


def reverse_debit(state: BankState, saga_id: str) -> Result:
    done = state.debits.get(saga_id)
    if done is None:
        debits = state.debits.set(saga_id, Movement(None, 0, "reversed"))
        return replace(state, debits=debits), DEBIT_REVERSED, {"reversed_amount": 0}
    data = {"account": done.account, "reversed_amount": done.amount}
    if saga_id in state.credits:
        reason = "the payee was already credited; reversing the debit would create money"
        return refuse(state, REVERSE_FAILED, reason)
    if done.status == "reversed":
        return state, DEBIT_REVERSED, data
    assert done.account is not None
    acc = state.accounts[done.account]
    accounts = state.accounts.set(done.account, replace(acc, balance=acc.balance + done.amount))
    debits = state.debits.set(saga_id, replace(done, status="reversed"))
    return replace(state, accounts=accounts, debits=debits), DEBIT_REVERSED, data


def credit(state: BankState, saga_id: str, account: str) -> Result:
    """Credit what the transfer's debit took: never more than was debited."""
    done = state.credits.get(saga_id)
    if done is not None:
        return state, CREDITED, _credited(saga_id, done)
    debited = state.debits.get(saga_id)
    if debited is None or debited.status != "done":
        why = "was reversed" if debited is not None else "never happened"
        return state, CREDIT_REJECTED, {"reason": f"the transfer's debit {why}; nothing to credit"}
    acc = state.accounts.get(account)
    if acc is None or acc.closed:
        why = "unknown" if acc is None else "closed"
        return state, CREDIT_REJECTED, {"reason": f"account {account} is {why}"}
    move = Movement(account, debited.amount, "done")
    accounts = state.accounts.set(account, replace(acc, balance=acc.balance + debited.amount))
    state = replace(state, accounts=accounts, credits=state.credits.set(saga_id, move))
    return state, CREDITED, _credited(saga_id, move)


def make_handler(topics: ServiceTopics = DEFAULT_TOPICS) -> Handler[BankState]:
    def handle(state: BankState, event: CloudEvent) -> tuple[BankState, list[Outgoing]]:
        t, saga = event.type, event.sagaid
        if t == REVERSE_DEBIT:
            result = reverse_debit(state, saga)
        elif t in (FRAUD_CHECK, SCREEN, DEBIT, CREDIT):
            transfer = TransferRequested.model_validate(event.data)
            if t == FRAUD_CHECK:
                result = fraud_check(state, transfer)
            elif t == SCREEN:
                result = screen(state, transfer)
            elif t == DEBIT:
                result = debit(state, saga, transfer.from_account, transfer.amount)
            else:
                result = credit(state, saga, transfer.to_account)
        else:
            return state, []
        new, type_, data = result
        return new, [answer(event, topics.bank_replies, SOURCE, type_, data)]

    return handle


handle = make_handler()


def invariants(state: BankState) -> dict[str, Any]:
    balances = {a: s.balance for a, s in sorted(state.accounts.items())}
    debited = sum(m.amount for m in state.debits.values() if m.status == "done")
    credited = sum(m.amount for m in state.credits.values())
    in_flight = debited - credited
    return {
        "balances": balances,
        "in_flight": in_flight,
        "conserved": sum(balances.values()) + in_flight == state.initial_total,
        "non_negative": all(b >= 0 for b in balances.values()),
    }


def _debited(saga_id: str, m: Movement) -> dict[str, Any]:
    return {"debit_id": derived_id(saga_id, "debit"), "account": m.account, "amount": m.amount}


def _credited(saga_id: str, m: Movement) -> dict[str, Any]:
    return {"credit_id": derived_id(saga_id, "credit"), "account": m.account, "amount": m.amount}
