"""Triage of an insurance claim by the agent: approve or deny, with a confidence.

Reads the claim's ``procedure`` and ``description``; the saga routes on
``triage_decision`` and ``triage_confidence`` (services/definitions/insurance_claim.yaml).
"""

from __future__ import annotations

from typing import Any

from sagas.participants.participant import Handler
from services.agent_step import AgentState, Assessment, agent_handler
from services.triage.model import NaiveBayes, trained

SOURCE = "sagastream/triage"
ASSESS = "triage.assess"
ASSESSED = "triage.assessed"


def claim_text(data: dict[str, Any]) -> str:
    return f"{data.get('procedure', '')} {data.get('description', '')}".strip()


def make_handler(reply_topic: str, model: NaiveBayes | None = None) -> Handler[AgentState]:
    classifier = model or trained()

    def assess(data: dict[str, Any]) -> Assessment:
        text = claim_text(data)
        if not text:
            raise ValueError("the claim has no procedure or description to read")
        return classifier.assess(text)

    return agent_handler(
        assess,
        command=ASSESS,
        reply_topic=reply_topic,
        success=ASSESSED,
        source=SOURCE,
        prefix="triage",
    )
