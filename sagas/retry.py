"""Retry policy as a documented value, with backoff computed by a pure function.

Shaped after temporalio's ``RetryPolicy``: a step (or a compensation) is
attempted at most ``attempts`` times; before attempt ``n + 1`` the engine waits
``initial * multiplier ** (n - 1)`` seconds, capped at ``maximum``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """How often, and how patiently, the engine tries one action again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=3, ge=1, description="Total attempts, the first included.")
    initial: float = Field(default=0.2, ge=0, description="Seconds before the second attempt.")
    multiplier: float = Field(default=2.0, ge=1.0)
    maximum: float = Field(default=30.0, ge=0, description="Cap on any single wait, seconds.")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` (1-based) before the next."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        return min(self.maximum, self.initial * self.multiplier ** (attempt - 1))

    def allows_another(self, attempt: int) -> bool:
        """True if attempt number ``attempt`` may be followed by one more."""
        return attempt < self.attempts


NO_RETRY = RetryPolicy(attempts=1)
