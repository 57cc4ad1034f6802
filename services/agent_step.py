"""A saga step answered by a model (an "AI agent"): the participant pattern.

    handler = agent_handler(assess, command="triage.assess", reply_topic="triage.replies",
                            success="triage.assessed", source="sagastream/triage",
                            prefix="triage")

``assess(command data) -> Assessment`` is the model: a decision and a confidence in
[0, 1]. The reply carries ``<prefix>_decision``, ``<prefix>_confidence`` and
``<prefix>_model`` into the saga's context, where the definition routes on them
with ``when:`` (low confidence, or a decision a model may not take alone, goes to a
step that ``awaits`` a person). A model that raises answers ``unsure`` with
confidence 0, so a person decides rather than the saga failing. The handler is pure
(the model must be: trained before the participant starts, no I/O per command);
the step's ``timeout`` bounds how long the saga waits for it. A hosted model that
needs the network plugs in through `sagas bridge` instead (README, "Healthcare").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from events.envelope import CloudEvent
from sagas.participants.participant import Handler, Outgoing
from services.common import answer

UNSURE = "unsure"


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a model answers: a decision, how sure it is (0 to 1), and which model said it."""

    decision: str
    confidence: float
    model: str


@dataclass(frozen=True, slots=True)
class AgentState:
    assessed: int = 0
    unsure: int = 0


def agent_handler(
    assess: Callable[[dict[str, Any]], Assessment],
    *,
    command: str,
    reply_topic: str,
    success: str,
    source: str,
    prefix: str,
) -> Handler[AgentState]:
    def handle(state: AgentState, event: CloudEvent) -> tuple[AgentState, list[Outgoing]]:
        if event.type != command:
            return state, []
        try:
            result = assess(dict(event.data))
            confidence = min(1.0, max(0.0, float(result.confidence)))
            data = {
                f"{prefix}_decision": result.decision,
                f"{prefix}_confidence": confidence,
                f"{prefix}_model": result.model,
            }
        except Exception as exc:  # a model's failure is doubt, not a saga failure
            data = {
                f"{prefix}_decision": UNSURE,
                f"{prefix}_confidence": 0.0,
                f"{prefix}_model": f"failed: {type(exc).__name__}: {exc}"[:200],
            }
        unsure = state.unsure + (data[f"{prefix}_decision"] == UNSURE)
        new = replace(state, assessed=state.assessed + 1, unsure=unsure)
        return new, [answer(event, reply_topic, source, success, data)]

    return handle
