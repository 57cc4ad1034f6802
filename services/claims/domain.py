"""The insurer's books for the claim saga: members' yearly allowances, reservations,
payments to providers and notices to members. Pure: `handle`.

eligibility -> reserve the benefit from the member's yearly allowance (undo:
release) -> [triage, human review: other services] -> pay the provider (the
pivot) -> notify the member. Each saga reserves, releases and pays at most once.
A release before the reservation is a remembered no-op that blocks the late
reservation; a release after the payment is refused (money left the insurer).
Payment needs evidence of approval: a person's (``approved_by`` from the review
signal) or the agent's own "approve" with at least ``auto_confidence`` on an amount
of at most ``review_above``, the same rule the saga's ``when:`` routes by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from immutables import Map

from events.envelope import CloudEvent
from sagas.participants.participant import Handler, Outgoing
from services.common import answer, refuse

SOURCE = "sagastream/claims"
CHECK, RESERVE, RELEASE, PAY, NOTIFY = (
    "claims.check_eligibility",
    "benefits.reserve",
    "benefits.release",
    "claims.pay_provider",
    "claims.notify_member",
)
ELIGIBLE, INELIGIBLE = "claims.eligible", "claims.ineligible"
RESERVED, INSUFFICIENT = "benefits.reserved", "benefits.insufficient"
RELEASED, RELEASE_FAILED = "benefits.released", "benefits.release_failed"
PAID, PAYMENT_REFUSED = "claims.paid", "claims.payment_refused"
NOTIFIED = "claims.member_notified"
HANDLES = frozenset({CHECK, RESERVE, RELEASE, PAY, NOTIFY})


@dataclass(frozen=True, slots=True)
class Member:
    allowance: int  # cents per policy year
    used: int = 0  # reserved or paid
    active: bool = True


@dataclass(frozen=True, slots=True)
class Reservation:
    member: str | None
    amount: int
    status: Literal["reserved", "released", "paid"]


@dataclass(frozen=True, slots=True)
class Payment:
    provider: str
    amount: int
    approved_by: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ClaimsState:
    auto_confidence: float
    review_above: int
    members: Map[str, Member]
    reservations: Map[str, Reservation]  # by saga id
    payments: Map[str, Payment]  # by saga id
    notified: Map[str, str]  # saga id -> member

    @classmethod
    def open(
        cls,
        members: Mapping[str, tuple[int, bool]],
        *,
        auto_confidence: float = 0.9,
        review_above: int = 100_000,
    ) -> ClaimsState:
        books = Map(
            {m: Member(allowance, active=active) for m, (allowance, active) in members.items()}
        )
        return cls(auto_confidence, review_above, books, Map(), Map(), Map())


Result = tuple[ClaimsState, str, dict[str, Any]]


def check(state: ClaimsState, data: Mapping[str, Any]) -> Result:
    member, amount = state.members.get(str(data.get("member_id"))), data.get("amount")
    if member is None or not member.active:
        why = "not a member" if member is None else "not covered this year"
        return refuse(state, INELIGIBLE, f"{data.get('member_id')} is {why}")
    if not isinstance(amount, int) or amount <= 0:
        return refuse(
            state, INELIGIBLE, f"the amount must be a positive number of cents: {amount!r}"
        )
    return state, ELIGIBLE, {}


def reserve(state: ClaimsState, saga_id: str, member_id: str, amount: int) -> Result:
    done = state.reservations.get(saga_id)
    if done is not None:
        if done.status == "released":
            return refuse(state, INSUFFICIENT, "the benefit was already released")
        return state, RESERVED, {"reserved_amount": done.amount}
    member = state.members[member_id]
    left = member.allowance - member.used
    if amount > left:
        return refuse(state, INSUFFICIENT, f"{member_id} has {left} left of {member.allowance}")
    members = state.members.set(member_id, replace(member, used=member.used + amount))
    booked = state.reservations.set(saga_id, Reservation(member_id, amount, "reserved"))
    return (
        replace(state, members=members, reservations=booked),
        RESERVED,
        {"reserved_amount": amount},
    )


def release(state: ClaimsState, saga_id: str) -> Result:
    done = state.reservations.get(saga_id)
    if done is None:
        tombstone = state.reservations.set(saga_id, Reservation(None, 0, "released"))
        return replace(state, reservations=tombstone), RELEASED, {"released_amount": 0}
    if done.status == "paid":
        return refuse(state, RELEASE_FAILED, "the provider was paid; the benefit stays used")
    if done.status == "released" or done.member is None:
        return state, RELEASED, {"released_amount": done.amount}
    member = state.members[done.member]
    members = state.members.set(done.member, replace(member, used=member.used - done.amount))
    booked = state.reservations.set(saga_id, replace(done, status="released"))
    return (
        replace(state, members=members, reservations=booked),
        RELEASED,
        {"released_amount": done.amount},
    )


def approval(state: ClaimsState, data: Mapping[str, Any]) -> tuple[str, float] | None:
    """Who approved the claim, and the agent's confidence; None if nobody did."""
    confidence = float(data.get("triage_confidence") or 0.0)
    if isinstance(data.get("approved_by"), str) and data["approved_by"]:
        return str(data["approved_by"]), confidence
    amount = data.get("amount")
    agent_may = isinstance(amount, int) and amount <= state.review_above
    if (
        agent_may
        and data.get("triage_decision") == "approve"
        and confidence >= state.auto_confidence
    ):
        return "agent", confidence
    return None


def pay(state: ClaimsState, saga_id: str, data: Mapping[str, Any]) -> Result:
    if (done := state.payments.get(saga_id)) is not None:
        return state, PAID, {"paid_amount": done.amount, "approved_by": done.approved_by}
    held = state.reservations.get(saga_id)
    if held is None or held.status != "reserved":
        return refuse(state, PAYMENT_REFUSED, "no standing reservation of the benefit")
    approved = approval(state, data)
    if approved is None:
        return refuse(state, PAYMENT_REFUSED, "nobody approved this claim")
    provider = str(data.get("provider_id", "unknown"))
    payment = Payment(provider, held.amount, *approved)
    state = replace(
        state,
        payments=state.payments.set(saga_id, payment),
        reservations=state.reservations.set(saga_id, replace(held, status="paid")),
    )
    return state, PAID, {"paid_amount": held.amount, "approved_by": payment.approved_by}


def make_handler(reply_topic: str) -> Handler[ClaimsState]:
    def handle(state: ClaimsState, event: CloudEvent) -> tuple[ClaimsState, list[Outgoing]]:
        t, saga, data = event.type, event.sagaid, event.data
        if t == CHECK:
            result = check(state, data)
        elif t == RESERVE:
            result = reserve(state, saga, str(data["member_id"]), int(data["amount"]))
        elif t == RELEASE:
            result = release(state, saga)
        elif t == PAY:
            result = pay(state, saga, data)
        elif t == NOTIFY:
            notified = state.notified.set(saga, str(data.get("member_id")))
            result = replace(state, notified=notified), NOTIFIED, {}
        else:
            return state, []
        new, type_, reply = result
        return new, [answer(event, reply_topic, SOURCE, type_, reply)]

    return handle


def invariants(state: ClaimsState) -> dict[str, Any]:
    """What must hold whatever happened; ``unsettled`` is 0 once every claim is terminal."""
    booked: dict[str, int] = {}
    for r in state.reservations.values():
        if r.member is not None and r.status != "released":
            booked[r.member] = booked.get(r.member, 0) + r.amount
    unapproved = [
        s
        for s, p in state.payments.items()
        if p.approved_by == "agent"
        and (p.confidence < state.auto_confidence or p.amount > state.review_above)
    ]
    return {
        "paid": len(state.payments),
        "released": sum(1 for r in state.reservations.values() if r.status == "released"),
        "unsettled": sum(1 for r in state.reservations.values() if r.status == "reserved"),
        "no_allowance_overdrawn": all(m.used <= m.allowance for m in state.members.values()),
        "books_match": all(m.used == booked.get(k, 0) for k, m in state.members.items()),
        "every_paid_claim_approved": not unapproved,
        "paid_by_person": sum(1 for p in state.payments.values() if p.approved_by != "agent"),
    }
