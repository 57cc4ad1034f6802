"""The demo's claims and transfers (issue 20): the same seed gives the same sagas, and
the checks catch a review answer that did not have its effect."""

from __future__ import annotations

from services.demo.domains import DomainResult, DomainScenario, _checks


def test_the_same_seed_gives_the_same_claims_and_transfers() -> None:
    a, b = DomainScenario(seed=3), DomainScenario(seed=3)
    assert a.claim_data() == b.claim_data() and a.transfer_data() == b.transfer_data()
    assert a.claim_data() != DomainScenario(seed=4).claim_data()


def test_a_rejected_claim_that_completed_breaks_the_demo() -> None:
    view = {
        "no_allowance_overdrawn": True,
        "books_match": True,
        "every_paid_claim_approved": True,
        "unsettled": 0,
        "paid": 2,
    }
    result = DomainResult(
        "insurance-claim",
        ["a", "b"],
        terminal={"a": "completed", "b": "completed"},
        answers={"b": "reject"},
        view=view,
    )
    failed = [c.name for c in _checks(result) if not c.ok]
    assert failed == ["no rejected or unanswered review completed"]
    for answer in ("approve", "late"):  # a late approval may beat the deadline's record
        result.answers = {"b": answer}
        assert all(c.ok for c in _checks(result))
    result.terminal = {"a": "completed"}
    assert [c.name for c in _checks(result) if not c.ok] == ["every saga ended", "paid = completed"]
