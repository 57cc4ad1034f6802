"""Failure injection of the reference services: some answers arrive late.

Moved here from the participant runtime (`sagas.participants.participant`), which only
offers the hook (``answer_delay``: seconds to hold back the outputs of an
input): injecting failures is the business of the services that demonstrate
them, and of the tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sagas.participants.participant import unit_interval


class LateAnswers(BaseModel):
    """Failure injection: answer ``probability`` of the inputs ``delay`` seconds late."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    probability: float = Field(default=0.0, ge=0.0, le=1.0)
    delay: float = Field(default=0.0, ge=0.0, description="Seconds.")

    def delay_for(self, event_id: str) -> float:
        """The delay for this input, decided by its id so a redelivery agrees."""
        if self.delay <= 0 or unit_interval(event_id, "late") >= self.probability:
            return 0.0
        return self.delay
