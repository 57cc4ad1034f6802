"""The retry budget: step deadlines fired per replica stay a share of the commands it sends.

Pure. Under overload replies come late, not never: a step deadline that fires
then retries (or compensates) a step whose reply is already on its way, and
every such retry is more load on a system that is already behind — the
retry storm that keeps an overloaded system down after the spike. Shaped after
Finagle's ``RetryBudget``: every first try (a command sent that is not a retry)
deposits ``ratio`` tokens, every step deadline the replica fires withdraws one,
and ``per_second`` tokens a second are always there so that deadlines still
fire when nothing new is sent (a participant that is really gone). Saved tokens
are capped at ``burst``.

When the budget is out the deadline waits: the coordinator keeps the timer and
looks again ``retry_after`` seconds later (the step gets more time for its
reply; it fails or retries once the budget allows). It never drops a deadline,
so every saga still ends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryBudgetPolicy:
    """``ratio``: deadlines per first try; ``per_second``: deadlines always allowed per
    second; ``burst``: most tokens saved. ``ratio`` 0 and ``per_second`` 0: no budget."""

    ratio: float
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.per_second < 0 or self.burst < 1:
            raise ValueError(
                f"a retry budget needs ratio >= 0, per_second >= 0 and burst >= 1, got "
                f"ratio={self.ratio} per_second={self.per_second} burst={self.burst}"
            )

    @property
    def unlimited(self) -> bool:
        return self.ratio == 0 and self.per_second == 0

    @property
    def retry_after(self) -> float:
        """Seconds a refused deadline waits before it is looked at again."""
        return 1.0 / self.per_second if self.per_second > 0 else 1.0


@dataclass(frozen=True, slots=True)
class BudgetState:
    tokens: float
    #: when ``per_second`` last added to ``tokens`` (seconds, the caller's clock)
    at: float


@dataclass(frozen=True, slots=True)
class Withdrawal:
    state: BudgetState
    allowed: bool


def full(policy: RetryBudgetPolicy, now: float) -> BudgetState:
    """A fresh budget: a replica that just started may fire a burst of deadlines."""
    return BudgetState(policy.burst, now)


def _refill(policy: RetryBudgetPolicy, state: BudgetState, now: float) -> BudgetState:
    elapsed = max(0.0, now - state.at)
    return BudgetState(min(policy.burst, state.tokens + elapsed * policy.per_second), now)


def deposit(policy: RetryBudgetPolicy, state: BudgetState, first_tries: int) -> BudgetState:
    """``first_tries`` commands were sent that were not retries."""
    if first_tries <= 0:
        return state
    return BudgetState(min(policy.burst, state.tokens + first_tries * policy.ratio), state.at)


def withdraw(policy: RetryBudgetPolicy, state: BudgetState, now: float) -> Withdrawal:
    """May one step deadline fire at ``now``? Takes a token if so."""
    if policy.unlimited:
        return Withdrawal(state, True)
    state = _refill(policy, state, now)
    if state.tokens >= 1.0:
        return Withdrawal(BudgetState(state.tokens - 1.0, state.at), True)
    return Withdrawal(state, False)
