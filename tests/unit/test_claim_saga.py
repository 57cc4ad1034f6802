"""The insurance-claim saga (issue 20) with the real insurer and triage agent (their pure
handlers) in the test kit, on virtual time: the agent's routing, the person's answer, and
the insurer's books (no allowance overdrawn, every paid claim approved, every unpaid
claim's reservation released)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import pytest

from events.envelope import CloudEvent
from sagas.messages import Outcome
from sagas.participants.participant import Handler
from sagas.testing import SagaProbe, SagaTestKit
from services import definitions
from services.agent_step import AgentState, Assessment, agent_handler
from services.claims.domain import HANDLES, ClaimsState, invariants, make_handler
from services.triage import domain as triage
from services.triage.model import trained

S = TypeVar("S")
HOUR = 3600.0


class Served(Generic[S]):
    """A pure participant answering the kit's commands, keeping its state between them."""

    def __init__(self, handler: Handler[S], state: S) -> None:
        self.handler, self.state = handler, state

    def __call__(self, command: CloudEvent) -> tuple[str, dict[str, Any]] | None:
        self.state, out = self.handler(self.state, command)
        return (out[0].event.type, dict(out[0].event.data)) if out else None


def claim_kit(
    model: Callable[[dict[str, Any]], Assessment] | None = None,
) -> tuple[SagaTestKit, Served[ClaimsState]]:
    kit = SagaTestKit(definitions.load("insurance_claim"))
    books = Served(make_handler("claims.replies"), ClaimsState.open({"mem-ann": (150_000, True)}))
    for command in HANDLES:
        kit.on(command).respond(books)
    agent: Handler[AgentState] = (
        triage.make_handler("triage.replies")
        if model is None
        else agent_handler(
            model,
            command=triage.ASSESS,
            reply_topic="triage.replies",
            success=triage.ASSESSED,
            source="test",
            prefix="triage",
        )
    )
    kit.on(triage.ASSESS).respond(Served(agent, AgentState()))
    return kit, books


def claim(amount: int, procedure: str, claim_id: str = "cl-1") -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "member_id": "mem-ann",
        "provider_id": "prov-1",
        "amount": amount,
        "procedure": procedure,
    }


def step_status(saga: SagaProbe, name: str) -> str:
    i = saga.kit.definition.step_index(name)
    return saga.state.steps[i].status.value


def test_a_small_clear_claim_is_paid_on_the_agents_word_alone() -> None:
    kit, books = claim_kit()
    saga = kit.start("s-1", claim(8_000, "physiotherapy session after knee surgery"))
    saga.expect_status("completed")
    assert step_status(saga, "human_review") == "skipped"
    assert saga.state.context["approved_by"] == "agent"
    assert invariants(books.state)["every_paid_claim_approved"]


@pytest.mark.parametrize(
    ("amount", "procedure", "why"),
    [
        (8_000, "cosmetic botox injections", "the agent would deny"),
        (120_000, "mri scan of the knee", "the amount is high"),
    ],
)
def test_a_person_reviews_when_the_agent_may_not_decide_alone(
    amount: int, procedure: str, why: str
) -> None:
    kit, books = claim_kit()
    saga = kit.start("s-2", claim(amount, procedure))
    assert step_status(saga, "human_review") == "running", why
    assert kit.publish("s-2", "claim.approved", {"approved_by": "dr-ann"}) is Outcome.APPLIED
    saga.expect_status("completed")
    assert saga.state.context["approved_by"] == "dr-ann"
    assert invariants(books.state)["paid_by_person"] == 1


def test_low_confidence_goes_to_a_person() -> None:
    kit, _ = claim_kit(lambda data: Assessment("approve", 0.6, "coin"))
    saga = kit.start("s-3", claim(8_000, "anything"))
    assert step_status(saga, "human_review") == "running"


def test_a_model_that_fails_is_doubt_and_a_person_decides() -> None:
    def broken(data: dict[str, Any]) -> Assessment:
        raise RuntimeError("model file missing")

    kit, _ = claim_kit(broken)
    saga = kit.start("s-4", claim(8_000, "anything"))
    assert saga.state.context["triage_decision"] == "unsure"
    assert step_status(saga, "human_review") == "running"


def test_rejected_or_unanswered_claims_release_the_benefit() -> None:
    kit, books = claim_kit()
    rejected = kit.start("s-5", claim(60_000, "cosmetic rhinoplasty", "cl-5"))
    unanswered = kit.start("s-6", claim(60_000, "hair transplant", "cl-6"))
    kit.publish("s-5", "claim.rejected", {"reason": "cosmetic", "rejected_by": "dr-ann"})
    kit.advance(48 * HOUR + 1)
    rejected.expect_status("compensated")
    unanswered.expect_status("compensated")
    assert kit.publish("s-6", "claim.approved", {"approved_by": "late"}) is Outcome.IGNORED_SIGNAL
    books_now = invariants(books.state)
    assert books_now["released"] == 2 and books_now["paid"] == 0 and books_now["unsettled"] == 0
    assert books.state.members["mem-ann"].used == 0


def test_no_allowance_is_overdrawn() -> None:
    kit, books = claim_kit()
    first = kit.start("s-7", claim(90_000, "mri scan of the knee", "cl-7"))
    second = kit.start("s-8", claim(90_000, "mri scan of the knee", "cl-8"))
    first.expect_status("completed")
    second.expect_status("compensated")
    assert "insufficient" in (second.state.failure or "")
    result = invariants(books.state)
    assert result["no_allowance_overdrawn"] and result["books_match"]


def test_the_agent_is_trained_offline_from_the_shipped_csv() -> None:
    model = trained()
    assert model.assess("cosmetic teeth whitening").decision == "deny"
    assert model.assess("emergency room x-ray for broken wrist").decision == "approve"
    assert 0.5 <= model.assess("routine checkup").confidence <= 1.0
