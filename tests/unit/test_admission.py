"""Admission control (`sagas.admission`): the bound, the hysteresis, what a batch may admit."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from events.envelope import CloudEvent
from events.topics import Topics
from sagas import admission
from sagas.admission import AdmissionLimits, GateChange
from sagas.batch_values import DecisionSignal
from sagas.builder import saga
from sagas.loader import DefinitionRegistry
from sagas.machine import decide
from sagas.messages import Observed, StartSaga, TimerFired
from sagas.state_codec import dump_state
from tests.unit.saga_fixtures import REJECTED, choreographed, three_step

ENGINE = Topics()


def test_limits_resume_at_three_quarters_and_zero_means_no_bound() -> None:
    assert AdmissionLimits.of(4000) == AdmissionLimits(4000, 3000)
    assert AdmissionLimits.of(1) == AdmissionLimits(1, 0)
    assert not AdmissionLimits.of(0).bounded
    with pytest.raises(ValueError, match="low < high"):
        AdmissionLimits(10, 10)


def test_gate_pauses_at_the_bound_and_resumes_only_at_the_low_water_mark() -> None:
    limits = AdmissionLimits(100, 75)
    assert admission.gate(limits, 99, paused=False) is GateChange.KEEP
    assert admission.gate(limits, 100, paused=False) is GateChange.PAUSE
    assert admission.gate(limits, 90, paused=True) is GateChange.KEEP
    assert admission.gate(limits, 75, paused=True) is GateChange.RESUME
    # a bound switched off resumes what was paused
    assert admission.gate(AdmissionLimits.of(0), 10**6, paused=True) is GateChange.RESUME
    assert admission.gate(AdmissionLimits.of(0), 10**6, paused=False) is GateChange.KEEP


def test_admit_keeps_the_first_records_up_to_the_room_left() -> None:
    limits = AdmissionLimits(100, 75)
    assert admission.admit(limits, 90, [4, 8, 3]) == [4, 6, 0]
    assert admission.admit(limits, 100, [4]) == [0]
    assert admission.admit(limits, 150, [4]) == [0]
    assert admission.admit(AdmissionLimits.of(0), 10**6, [4, 8]) == [4, 8]


def test_starts_on_saga_control_get_the_room_the_trigger_records_leave() -> None:
    limits = AdmissionLimits(100, 75)
    assert admission.room_left(limits, 90, 4, paused=False) == 6
    assert admission.room_left(limits, 90, 10, paused=False) == 0
    assert admission.room_left(limits, 150, 0, paused=False) == 0
    # paused, the starts on saga.starts wait: one from saga.control does not pass them
    assert admission.room_left(limits, 80, 0, paused=True) == 0
    assert admission.room_left(AdmissionLimits.of(0), 10**6, 8, paused=True) is None


@given(
    high=st.integers(1, 200),
    batches=st.lists(
        st.tuples(
            st.lists(st.integers(0, 300), max_size=4), st.integers(0, 300), st.integers(0, 50)
        ),
        max_size=60,
    ),
)
@example(high=5, batches=[([5], 0, 0), ([], 1, 0), ([1], 0, 0)])  # paused at 4 of 5: held back
@example(high=5, batches=[([3], 0, 4), ([], 1, 1)])  # control starts past the room move
def test_in_flight_never_passes_the_bound_and_starts_resume(
    high: int, batches: list[tuple[list[int], int, int]]
) -> None:
    """A replica admitting, finishing and pausing as told never holds more than the bound,
    whether its starts come on trigger partitions or on saga.control, and a paused one
    that falls to the low-water mark is told to resume. (A paused replica holds every
    start back until then, below the bound too: the hysteresis.)"""
    limits = AdmissionLimits.of(high)
    in_flight, paused = 0, False
    for offered, finishing, on_control in batches:
        kept = [0] * len(offered) if paused else admission.admit(limits, in_flight, offered)
        assert all(0 <= k <= n for k, n in zip(kept, offered, strict=True))
        room = admission.room_left(limits, in_flight, sum(kept), paused)
        assert room is not None and room >= 0
        # every record kept starts a saga (the worst case), then some end
        in_flight += sum(kept) + min(on_control, room)
        assert in_flight <= limits.high
        if sum(kept) < sum(offered) and not paused:
            assert in_flight == limits.high  # unpaused, only the bound holds a record back
        in_flight -= min(finishing, in_flight)
        change = admission.gate(limits, in_flight, paused)
        if change is GateChange.PAUSE:
            assert not paused and in_flight >= limits.high
            paused = True
        elif change is GateChange.RESUME:
            assert paused and in_flight <= limits.low
            paused = False
        if paused:
            assert in_flight > limits.low
        else:
            assert in_flight < limits.high


def test_only_trigger_topics_that_carry_no_replies_are_paused() -> None:
    shared = (
        saga("shared")
        .triggered_by("job.requested", topic="jobs")
        .step("run")
        .command("job.run", topic="job.commands")
        .replies("jobs", success="job.done", failure="job.failed")
        .build()
    )
    registry = DefinitionRegistry([three_step(), shared])
    assert admission.start_only_topics(registry, ENGINE) == {"orders", ENGINE.starts}
    assert admission.shared_trigger_topics(registry, ENGINE) == frozenset({"jobs"})
    # the control topic (API starts, timers, operators) is never paused; saga.starts
    # (client starts) always is, also for sagas that have no trigger topic
    api_only = (
        saga("api").step("a").command("a.do", topic="a").replies("a.r", success="a.ok").build()
    )
    assert admission.start_only_topics(DefinitionRegistry([api_only]), ENGINE) == {ENGINE.starts}


def _signal(decision_of: object, started: bool = False) -> DecisionSignal:
    return DecisionSignal("order", decision_of, started, False)  # type: ignore[arg-type]


def test_decisions_count_a_start_in_and_a_terminal_state_out() -> None:
    definition = three_step(retries=2)
    start = decide(definition, None, StartSaga("s-1", {}), 0.0)
    assert start.state is not None
    assert admission.in_flight_change([_signal(start, started=True)]) == 1
    assert admission.first_tries([_signal(start, started=True)]) == 1
    # the reserve step's deadline passes; after the backoff a retry is sent: no first try
    deadline = next(iter(start.state.timers))
    waiting = decide(definition, start.state, TimerFired(deadline), 100.0)
    assert waiting.state is not None
    backoff = next(iter(waiting.state.timers))
    retried = decide(definition, waiting.state, TimerFired(backoff), 101.0)
    assert len(retried.commands) == 1
    assert admission.first_tries([_signal(waiting), _signal(retried)]) == 0
    assert admission.in_flight_change([_signal(waiting), _signal(retried)]) == 0
    # refused: nothing succeeded, so the saga ends compensated at once
    refusal = CloudEvent(
        id="r-1",
        source="inventory",
        type=REJECTED,
        sagaid="s-1",
        causationid=retried.commands[0].event.id,
        data={},
    )
    ended = decide(definition, retried.state, Observed(refusal), 101.0)
    assert ended.state is not None and ended.state.terminal
    assert admission.in_flight_change([_signal(ended)]) == -1
    # a duplicate start changes nothing, so it is not counted
    again = decide(definition, start.state, StartSaga("s-1", {}), 1.0)
    assert admission.in_flight_change([_signal(again, started=True)]) == 0
    # recovery's recount: running and compensating are in flight, terminal is not
    values = [dump_state(start.state), dump_state(ended.state), b'E{"expires":1,"records":[]}']
    assert admission.in_flight_in(values) == 1


def test_choreographed_trigger_topic_is_pausable() -> None:
    registry = DefinitionRegistry([choreographed()])
    assert admission.start_only_topics(registry, ENGINE) == {"orders", ENGINE.starts}
