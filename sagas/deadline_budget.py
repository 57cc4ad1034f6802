"""Applies the retry budget (`sagas.retry_budget`) to the step deadlines a replica fires.

A step deadline that falls due is fired only if the budget has a token; if not,
it waits `RetryBudgetPolicy.retry_after` seconds and is looked at again. The
table's own deadlines (early events, the retention purge) are not budgeted:
they add no commands.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagas import admission, retry_budget
from sagas.batch_values import DecisionSignal
from sagas.retry_budget import BudgetState, RetryBudgetPolicy
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN


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

    def allows(self, token: str, now: float) -> bool:
        """May the deadline ``token`` fire now? (Takes a token from the budget if so.)"""
        if token.startswith((EARLY_TOKEN, PURGE_TOKEN)):
            return True
        taken = retry_budget.withdraw(self.policy, self.state, now)
        self.state = taken.state
        return taken.allowed
