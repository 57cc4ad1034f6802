"""The saga state machine: the whole behaviour of a saga, with no I/O.

    decide(definition, state, message, now) -> Decision

No Kafka, no clock, no globals: ``now`` is passed in (epoch seconds) and every
id is derived from the saga id, step, action and attempt, so the same input
always yields the same output, byte for byte. That is what makes a re-run after
a crash harmless: commands re-sent carry the ids participants already saw.

Rules (DESIGN.md, "Semantics the engine must guarantee"):

* Stages run in order; the steps of a parallel group form one stage and all
  must succeed (fan-in on all).
* A failure reply is a business "no" and final before the pivot. A timeout is
  retried per the step's retry policy, then final. After the pivot a saga only
  moves forward: failures and timeouts are retried, and when the budget is
  spent the saga parks as ``failed`` for an operator. A parked saga still
  follows the other steps of its stage, and runs on by itself if the step it
  gave up on turns out to have succeeded.
* A final failure cancels the running siblings of its stage and compensates,
  in reverse order (or all at once), every step that succeeded plus every step
  whose outcome is in doubt (timed out or cancelled) unless the step opts out.
  Compensations are retried with backoff; when one gives up, the saga parks as
  ``failed``. ``retry``, ``skip`` and ``resolve`` repair it.
* ``abort`` compensates exactly like a failure, then ends ``aborted``.
* A pivot that times out may have committed: the saga parks as ``failed``
  rather than undo the steps before it. A late success resumes it; ``abort``
  compensates; ``resolve`` completes. Abort is refused while the pivot is in
  flight or once it succeeded.
* A choreography event for a step of a later stage is held in the state and
  applied when that stage begins, so steps resolve, and ``saga.lifecycle``
  reads, in step order; if the saga goes backward first, a held success is a
  late effect.
* A success for a step the saga gave up on or compensated, seen while it goes
  backward or after it ended compensated or aborted, is a late effect: it is
  compensated at once, whatever undid the step before (`sagas.backward`).
* Duplicate, late and unknown messages change nothing; the outcome says which.
  A "no" to an attempt that a newer attempt has superseded is late, and so is
  a "no" that could only schedule the retry that is already scheduled.
* Conditions, waits for a signal and deadline fallbacks: `sagas.branching`.
"""

from __future__ import annotations

from events.envelope import CloudEvent
from sagas.branching import DONE, Branching
from sagas.definition import SagaDefinition
from sagas.messages import (
    Abort,
    Decision,
    Message,
    Observed,
    Outcome,
    Resolve,
    RetryFailed,
    Signal,
    Skip,
    StartSaga,
    TimerFired,
)
from sagas.run_output import command_id, make_event, reason_of
from sagas.state import HeldEvent, SagaState, SagaStatus, StepState, StepStatus

__all__ = ["command_id", "decide"]

_GAVE_UP = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})


def decide(
    definition: SagaDefinition, state: SagaState | None, message: Message, now: float
) -> Decision:
    """Apply one message to one saga."""
    if isinstance(message, StartSaga):
        if state is not None:
            return Decision(state, Outcome.DUPLICATE, note="saga already started")
        run = _Run(definition, _new_state(definition, message, now), now)
        run.start()
        return run.decision(Outcome.APPLIED)
    if state is None:
        return Decision(None, Outcome.UNKNOWN_SAGA, note="no saga with this id")
    run = _Run(definition, state.working_copy(), now)
    outcome = run.apply(message)
    if outcome is not Outcome.APPLIED:
        return Decision(state, outcome, note=run.note)
    return run.decision(outcome)


def _new_state(definition: SagaDefinition, start: StartSaga, now: float) -> SagaState:
    return SagaState(
        saga_id=start.saga_id,
        name=definition.name,
        version=definition.version,
        context=dict(start.data),
        steps=[StepState() for _ in definition.steps],
        started_at=now,
        updated_at=now,
    )


class _Run(Branching):
    """One decision: forward moves, timers and operator repairs (compensation in `Backward`)."""

    # -- dispatch ---------------------------------------------------------------------

    def apply(self, message: Message) -> Outcome:
        if isinstance(message, Observed):
            return self.on_event(message.event)
        if isinstance(message, TimerFired):
            return self.on_timer(message.token)
        if isinstance(message, Abort):
            return self.on_abort(message.reason)
        if isinstance(message, RetryFailed):
            return self.on_retry(message.reason)
        if isinstance(message, Skip):
            return self.on_skip(message.step, message.reason)
        if isinstance(message, Resolve):
            return self.on_resolve(message.reason)
        return self.reject(f"unsupported message {type(message).__name__}")

    # -- forward ------------------------------------------------------------------------

    def start(self) -> None:
        self.emit("saga.started", data={"context": self.s.context})
        self.enter_stage(0)

    def enter_stage(self, k: int) -> None:
        self.s.stage = k
        if k == len(self.d.stages):
            self.finish(SagaStatus.COMPLETED)
            return
        for i in self.d.stages[k]:
            if self.s.steps[i].status is StepStatus.PENDING and self.taken(i):
                self.issue(i, 1)
        self.release_held(k)
        self.evaluate_stage()

    def hold(self, i: int, event: CloudEvent) -> Outcome:
        """Keep an event of a later step until its stage begins, so steps resolve in order."""
        if any(h.step == i and h.type == event.type for h in self.s.held):
            return self.reject("already held for its stage", Outcome.DUPLICATE)
        self.s.held.append(HeldEvent(i, event.type, event.id, dict(event.data)))
        self.record("event.held", self.d.steps[i].name, f"{event.type} until its stage begins")
        return Outcome.APPLIED

    def release_held(self, k: int) -> None:
        while self.s.phase == "forward":
            held = next((h for h in self.s.held if self.d.stage_of[h.step] == k), None)
            if held is None:
                return
            self.s.held.remove(held)
            event = make_event(held.id, held.type, self.now, self.s.saga_id, held.data)
            self.on_step_outcome(held.step, event)

    def issue(self, i: int, attempt: int) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        st.status = StepStatus.RUNNING
        st.attempt = attempt
        if st.started_at is None:
            st.started_at = self.now
        if step.command is not None:
            self.send(i, "do", attempt, step.command.type, step.command.topic)
        self.set_timer("deadline", i, "do", attempt, self.now + step.timeout)

    def on_event(self, event: CloudEvent) -> Outcome:
        cause = event.causationid
        if cause is not None and cause in self.s.issued:
            i, phase, attempt = self.s.issued[cause]
            if phase == "undo":
                return self.on_compensation_reply(i, event, attempt)
            return self.on_step_outcome(i, event, attempt)
        waiting = self.waiting_step(event)
        if waiting is not None:
            return waiting if isinstance(waiting, Outcome) else self.on_step_outcome(waiting, event)
        for i, step in enumerate(self.d.steps):
            if (
                step.observes is not None
                and step.settled_by(event.type)
                and self.s.steps[i].status in (StepStatus.PENDING, StepStatus.RUNNING)
            ):
                return self.on_step_outcome(i, event)
        for i, step in enumerate(self.d.steps):
            if step.observes is not None and step.settled_by(event.type):
                return self.on_step_outcome(i, event)
        return self.reject(f"event {event.type!r} matches no step", Outcome.UNKNOWN)

    def on_step_outcome(self, i: int, event: CloudEvent, attempt: int | None = None) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        success = event.type in step.success
        if not success and event.type not in step.failure:
            expected = ", ".join(step.success + step.failure)
            return self.reject(
                f"step {step.name!r} got {event.type!r}, expected one of: {expected}",
                Outcome.UNKNOWN,
            )
        if self.s.phase == "backward":
            if success:
                return self.on_success_while_backward(i, event)
            return self.late(st, event.type)
        parked = self.s.status is SagaStatus.FAILED
        if self.s.status.terminal and not parked:
            return self.late(st, event.type)
        if parked and success and st.status in _GAVE_UP:
            # A forward step we had given up on did succeed after all: take the success.
            st.status = StepStatus.RUNNING
        if st.status is StepStatus.PENDING and self.d.stage_of[i] > self.s.stage:
            return self.hold(i, event)
        if st.status not in (StepStatus.RUNNING, StepStatus.WAITING_RETRY):
            return self.late(st, event.type)
        if not success and attempt is not None and attempt < st.attempt:
            # A newer attempt is in flight and may still succeed; this "no" is stale.
            return self.late(st, event.type)
        if not success and st.status is StepStatus.WAITING_RETRY and self.past_pivot(i):
            return self.late(st, event.type)
        self.clear_timers(i, "do")
        if success:
            st.status = StepStatus.SUCCEEDED
            st.finished_at = self.now
            st.outcome = event.type
            self.s.context.update(event.data)
            self.emit("saga.step.succeeded", step.name, {"attempt": st.attempt})
            self.signals.append(
                Signal("step_done", step.name, self.now - (st.started_at or self.now))
            )
        else:
            self.step_failed(i, reason=reason_of(event))
        if i in self.d.stages[self.s.stage]:
            self.resume_if_repaired()
            self.evaluate_stage()
        return Outcome.APPLIED

    def past_pivot(self, i: int) -> bool:
        pivot = self.d.pivot_index
        return pivot is not None and i > pivot

    def step_failed(self, i: int, reason: str, timed_out: bool = False) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        retriable = step.command is not None and (timed_out or self.past_pivot(i))
        if retriable and step.retry.allows_another(st.attempt - st.budget_base):
            st.status = StepStatus.WAITING_RETRY
            self.signals.append(Signal("retry", step.name))
            due = self.now + step.retry.backoff(st.attempt - st.budget_base)
            self.set_timer("retry", i, "do", st.attempt, due)
            self.record("step.retry", step.name, reason)
            return
        st.status = StepStatus.TIMED_OUT if timed_out else StepStatus.FAILED
        st.finished_at = self.now
        st.outcome = "timeout" if timed_out else reason
        self.s.failure = f"step {step.name!r} failed: {reason}"
        self.emit("saga.step.failed", step.name, {"reason": reason, "attempt": st.attempt})

    def resume_if_repaired(self) -> None:
        """A saga parked after its pivot runs on once no step of its stage is given up."""
        if self.s.status is not SagaStatus.FAILED or self.s.phase != "forward":
            return
        if any(self.s.steps[i].status in _GAVE_UP for i in self.d.stages[self.s.stage]):
            return
        self.s.status = SagaStatus.RUNNING
        self.s.finished_at = None
        self.record("resumed", None, "every given-up step of the stage succeeded after all")

    def evaluate_stage(self) -> None:
        if self.s.status is not SagaStatus.RUNNING:
            return
        stage = self.d.stages[self.s.stage]
        gave_up = [i for i in stage if self.s.steps[i].status in _GAVE_UP]
        pivot = self.d.pivot_index
        if gave_up and pivot in gave_up and self.s.steps[pivot].status is StepStatus.TIMED_OUT:
            # The go/no-go step may have committed without telling us: undoing the steps
            # before it could leave it half-done, so a person decides (resolve, retry, abort).
            name = self.d.steps[pivot].name
            self.park(
                f"pivot step {name!r} timed out and may have committed; resolve if it "
                f"did, abort to compensate if it did not, or retry it"
            )
        elif gave_up:
            if self.past_pivot(gave_up[0]):
                name = self.d.steps[gave_up[0]].name
                reason = self.s.steps[gave_up[0]].outcome
                self.park(f"step {name!r} after the pivot gave up: {reason}")
            else:
                self.begin_compensation(self.s.failure or "a step failed")
        elif all(self.s.steps[i].status in DONE for i in stage):
            self.enter_stage(self.s.stage + 1)

    # -- timers -------------------------------------------------------------------------

    def on_timer(self, token: str) -> Outcome:
        spec = self.s.timers.pop(token, None)
        if spec is None:
            return self.reject("timer no longer armed", Outcome.STALE_TIMER)
        step, st = self.d.steps[spec.step], self.s.steps[spec.step]
        if spec.phase == "do":
            if spec.kind == "retry" and st.status is StepStatus.WAITING_RETRY:
                self.issue(spec.step, st.attempt + 1)
            elif spec.kind == "deadline" and st.status is StepStatus.RUNNING:
                self.signals.append(Signal("timeout", step.name))
                if not self.expired_to_fallback(spec.step):
                    self.step_failed(spec.step, "timeout", timed_out=True)
                self.evaluate_stage()
            else:
                return self.reject("timer for a settled step", Outcome.STALE_TIMER)
        elif st.status is StepStatus.COMPENSATING:
            if spec.kind == "retry":
                self.issue_compensation(spec.step, st.comp_attempt + 1)
            else:
                self.signals.append(Signal("timeout", step.name))
                self.compensation_failed(spec.step, "timeout")
        else:
            return self.reject("timer for a settled compensation", Outcome.STALE_TIMER)
        return Outcome.APPLIED

    # -- operator -----------------------------------------------------------------------

    def on_abort(self, reason: str) -> Outcome:
        pivot = self.d.pivot_index
        pivot_status = self.s.steps[pivot].status if pivot is not None else None
        parked_on_pivot = (
            self.s.status is SagaStatus.FAILED
            and self.s.phase == "forward"
            and pivot_status is StepStatus.TIMED_OUT
        )
        if self.s.status is not SagaStatus.RUNNING and not parked_on_pivot:
            return self.reject(f"cannot abort a saga that is {self.s.status.value}")
        if pivot is not None and pivot_status is StepStatus.SUCCEEDED:
            name = self.d.steps[pivot].name
            return self.reject(f"saga passed its pivot step {name!r}; it can only move forward")
        if pivot is not None and pivot_status in (StepStatus.RUNNING, StepStatus.WAITING_RETRY):
            name = self.d.steps[pivot].name
            return self.reject(
                f"pivot step {name!r} is in flight; abort once it has answered or timed out"
            )
        if parked_on_pivot:
            self.s.status = SagaStatus.RUNNING
        self.s.abort_reason = reason
        self.record("abort", None, reason)
        self.begin_compensation(f"aborted: {reason}")
        return Outcome.APPLIED

    def on_retry(self, reason: str) -> Outcome:
        if self.s.status is not SagaStatus.FAILED:
            return self.reject(f"only a failed saga can be retried; this one is {self.s.status}")
        self.record("operator.retry", None, reason)
        if self.s.phase == "backward":
            self.s.status = SagaStatus.COMPENSATING
            for i, st in enumerate(self.s.steps):
                if st.status is StepStatus.COMPENSATION_FAILED:
                    st.budget_base = st.comp_attempt
                    self.issue_compensation(i, st.comp_attempt + 1)
            return Outcome.APPLIED
        self.s.status = SagaStatus.RUNNING
        for i in self.d.stages[self.s.stage]:
            st = self.s.steps[i]
            if st.status in (StepStatus.FAILED, StepStatus.TIMED_OUT):
                st.budget_base = st.attempt
                self.issue(i, st.attempt + 1)
        return Outcome.APPLIED

    def on_skip(self, step_name: str, reason: str) -> Outcome:
        if self.s.status is not SagaStatus.FAILED:
            return self.reject(f"only a failed saga can skip a step; this one is {self.s.status}")
        i = self.d.step_index(step_name)
        st = self.s.steps[i]
        backward = self.s.phase == "backward"
        blocking = {StepStatus.COMPENSATION_FAILED} if backward else _GAVE_UP
        if st.status not in blocking:
            return self.reject(f"step {step_name!r} is {st.status.value}, nothing to skip")
        st.status = StepStatus.SKIPPED if backward else StepStatus.SUCCEEDED
        self.record("operator.skip", step_name, reason)
        if backward:
            if not any(x.status is StepStatus.COMPENSATION_FAILED for x in self.s.steps):
                self.s.status = SagaStatus.COMPENSATING
                self.continue_compensation()
        else:
            self.resume_if_repaired()
            self.evaluate_stage()
        return Outcome.APPLIED

    def on_resolve(self, reason: str) -> Outcome:
        if self.s.status is not SagaStatus.FAILED:
            return self.reject(f"only a failed saga can be resolved; this one is {self.s.status}")
        self.record("operator.resolve", None, reason)
        if self.s.phase == "forward":
            self.finish(SagaStatus.COMPLETED, resolved=reason)
        else:
            self.finish(
                SagaStatus.ABORTED if self.s.abort_reason else SagaStatus.COMPENSATED,
                resolved=reason,
            )
        return Outcome.APPLIED
