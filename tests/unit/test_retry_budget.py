"""The retry budget (`sagas.retry_budget`, applied by `sagas.deadline_budget`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagas import retry_budget
from sagas.deadline_budget import DeadlineBudget
from sagas.retry_budget import RetryBudgetPolicy
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="ratio >= 0"):
        RetryBudgetPolicy(-0.1, 1, 10)
    with pytest.raises(ValueError, match="burst >= 1"):
        RetryBudgetPolicy(0.1, 1, 0.5)


def test_deadlines_past_the_budget_wait_until_first_tries_or_time_pay_for_them() -> None:
    policy = RetryBudgetPolicy(ratio=0.1, per_second=0.0, burst=2)
    state = retry_budget.full(policy, 0.0)
    allowed = []
    for _ in range(3):
        taken = retry_budget.withdraw(policy, state, 0.0)
        state = taken.state
        allowed.append(taken.allowed)
    assert allowed == [True, True, False]
    # nine first tries are not enough for one more deadline, ten are
    state = retry_budget.deposit(policy, state, 9)
    assert not retry_budget.withdraw(policy, state, 0.0).allowed
    state = retry_budget.deposit(policy, state, 1)
    assert retry_budget.withdraw(policy, state, 0.0).allowed


def test_the_floor_lets_deadlines_fire_when_nothing_is_sent() -> None:
    """A participant that is really gone still gets its sagas timed out and compensated."""
    policy = RetryBudgetPolicy(ratio=0.1, per_second=4.0, burst=1)
    state = retry_budget.withdraw(policy, retry_budget.full(policy, 0.0), 0.0).state
    refused = retry_budget.withdraw(policy, state, 0.1)
    assert not refused.allowed
    assert retry_budget.withdraw(policy, refused.state, 0.1 + policy.retry_after).allowed


def test_no_budget_allows_everything() -> None:
    policy = RetryBudgetPolicy(0.0, 0.0, 1)
    state = retry_budget.full(policy, 0.0)
    for _ in range(100):
        taken = retry_budget.withdraw(policy, state, 0.0)
        assert taken.allowed
        state = taken.state


@given(
    ratio=st.floats(0.0, 1.0),
    per_second=st.floats(0.0, 50.0),
    burst=st.floats(1.0, 100.0),
    events=st.lists(
        st.tuples(st.floats(0.0, 2.0), st.integers(0, 50), st.integers(0, 20)), max_size=50
    ),
)
def test_deadlines_fired_stay_within_the_budget(
    ratio: float,
    per_second: float,
    burst: float,
    events: list[tuple[float, int, int]],
) -> None:
    """Whatever happens: fired <= burst + ratio x first tries + per_second x time."""
    policy = RetryBudgetPolicy(ratio, per_second, burst)
    now = 0.0
    state = retry_budget.full(policy, now)
    fired = sent = 0
    for step, first, due in events:
        now += step
        state = retry_budget.deposit(policy, state, first)
        sent += first
        for _ in range(due):
            taken = retry_budget.withdraw(policy, state, now)
            state = taken.state
            fired += taken.allowed
        assert 0.0 <= state.tokens <= burst
        if not policy.unlimited:
            assert fired <= burst + ratio * sent + per_second * now + 1e-6


def test_the_table_s_own_deadlines_are_not_budgeted() -> None:
    budget = DeadlineBudget(RetryBudgetPolicy(0.0, 1.0, 1), 0.0)
    assert budget.allows("step-deadline", 0.0)
    assert not budget.allows("step-deadline", 0.0)
    assert budget.allows(EARLY_TOKEN + "s-1", 0.0)
    assert budget.allows(PURGE_TOKEN + "s-1", 0.0)
