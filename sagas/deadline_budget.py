"""Applies the retry budget (`sagas.retry_budget`) to the step deadlines a replica fires.

A step's (or a compensation's) deadline that falls due is fired only if the
budget has a token; if not, it waits `RetryBudgetPolicy.retry_after` seconds
and is looked at again. Other timers are not budgeted: the end of a retry's
backoff (its deadline already paid), and the table's own deadlines (early
events, the retention purge), which add no commands.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from sagas import admission, retry_budget
from sagas.batch_values import DecisionSignal
from sagas.retry_budget import BudgetState, RetryBudgetPolicy
from sagas.state import SagaState
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN

#: the timers the budget counts (`sagas.state.TimerSpec.kind`)
DEADLINE = "deadline"


def timer_kind(token: str, raw: bytes | None, decoded: SagaState | None) -> str:
    """The kind of an armed timer (``deadline`` or ``retry``; ``table`` for the table's own),
    from the saga's decoded state if at hand, else from its stored JSON."""
    if token.startswith((EARLY_TOKEN, PURGE_TOKEN)):
        return "table"
    if decoded is not None:
        spec = decoded.timers.get(token)
        return spec.kind if spec is not None else "table"
    if raw is None:
        return "table"
    timer = orjson.loads(raw).get("timers", {}).get(token)
    return str(timer.get("kind")) if isinstance(timer, dict) else "table"


class DeadlineBudget:
    def __init__(self, policy: RetryBudgetPolicy, now: float) -> None:
        self.policy = policy
        self.state: BudgetState = retry_budget.full(policy, now)

    def observe(self, decisions: Sequence[DecisionSignal]) -> None:
        """Deposit the batch's first tries."""
        if not self.policy.unlimited:
            self.state = retry_budget.deposit(
                self.policy, self.state, admission.first_tries(decisions)
            )

    def allows(self, token: str, now: float, kind: str) -> bool:
        """May the timer ``token`` of ``kind`` fire now? (A deadline takes a token if so.)"""
        if kind != DEADLINE or self.policy.unlimited:
            return True
        taken = retry_budget.withdraw(self.policy, self.state, now)
        self.state = taken.state
        return taken.allowed
