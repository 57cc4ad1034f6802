"""The retry budget (`sagas.retry_budget`, applied by `sagas.deadline_budget`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagas import retry_budget
from sagas.deadline_budget import DeadlineBudget, timer_kind
from sagas.machine import decide
from sagas.messages import StartSaga, TimerFired
from sagas.retry_budget import RetryBudgetPolicy
from sagas.state_codec import dump_state
from sagas.table_codec import EARLY_TOKEN, PURGE_TOKEN
from tests.unit.saga_fixtures import three_step


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


def test_only_deadlines_are_budgeted() -> None:
    budget = DeadlineBudget(RetryBudgetPolicy(0.0, 1.0, 1), 0.0)
    assert budget.allows("t-1", 0.0, "deadline")
    assert not budget.allows("t-2", 0.0, "deadline")
    # the end of a retry's backoff (its deadline paid already), the table's own timers
    assert budget.allows("t-3", 0.0, "retry")
    assert budget.allows(EARLY_TOKEN + "s-1", 0.0, "table")


def test_the_kind_of_a_timer_is_read_from_the_state_or_its_stored_json() -> None:
    definition = three_step(retries=2)
    start = decide(definition, None, StartSaga("s-1", {}), 0.0)
    assert start.state is not None
    deadline = next(iter(start.state.timers))
    waiting = decide(definition, start.state, TimerFired(deadline), 100.0)
    assert waiting.state is not None
    backoff = next(iter(waiting.state.timers))
    for state in (start.state, waiting.state):
        for token, spec in state.timers.items():
            assert timer_kind(token, None, state) == spec.kind
            assert timer_kind(token, dump_state(state), None) == spec.kind
    assert timer_kind(deadline, None, start.state) == "deadline"
    assert timer_kind(backoff, dump_state(waiting.state), None) == "retry"
    assert timer_kind(PURGE_TOKEN + "s-1", dump_state(start.state), None) == "table"
    assert timer_kind("gone", None, None) == "table"
