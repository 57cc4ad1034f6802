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
* A success that arrives while the saga is going backward, for a step that
  the compensation does not cover, gets its compensation at once: nothing
  leaks. (A step already in the plan is compensated in its turn.)
* Duplicate, late and unknown messages change nothing; the outcome says which.
  A "no" to an attempt that a newer attempt has superseded is late, and so is
  a "no" that could only schedule the retry that is already scheduled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events.envelope import CloudEvent, derived_id
from sagas.definition import SagaDefinition
from sagas.messages import (
    Abort,
    Decision,
    Message,
    Observed,
    Outcome,
    Outgoing,
    Resolve,
    RetryFailed,
    Signal,
    Skip,
    StartSaga,
    TimerFired,
    TimerRequest,
)
from sagas.state import (
    IN_DOUBT,
    UNDONE,
    HistoryEntry,
    Phase,
    SagaState,
    SagaStatus,
    StepState,
    StepStatus,
    TimerSpec,
)

SOURCE = "sagastream/coordinator"
_GAVE_UP = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})


def command_id(saga_id: str, step: str, phase: Phase, attempt: int) -> str:
    """The id of a command: the same for a re-send, different for a new attempt."""
    return derived_id(saga_id, step, phase, attempt)


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


class _Run:
    """One decision in the making: a working copy of the state plus what to emit."""

    def __init__(self, definition: SagaDefinition, state: SagaState, now: float) -> None:
        self.d = definition
        self.s = state
        self.now = now
        self.commands: list[Outgoing] = []
        self.lifecycle: list[CloudEvent] = []
        self.timers: list[TimerRequest] = []
        self.signals: list[Signal] = []
        self.note = ""

    def decision(self, outcome: Outcome) -> Decision:
        self.s.updated_at = self.now
        return Decision(
            self.s,
            outcome,
            tuple(self.commands),
            tuple(self.lifecycle),
            tuple(self.timers),
            tuple(self.signals),
            self.note,
        )

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

    def reject(self, note: str, outcome: Outcome = Outcome.REJECTED) -> Outcome:
        self.note = note
        return outcome

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
            if self.s.steps[i].status is StepStatus.PENDING:
                self.issue(i, 1)
        self.evaluate_stage()

    def issue(self, i: int, attempt: int) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        st.status = StepStatus.RUNNING
        st.attempt = attempt
        if st.started_at is None:
            st.started_at = self.now
        if step.command is not None:
            self.send(i, "do", attempt, step.command.type, step.command.topic)
        if step.timeout is not None:
            self.set_timer("deadline", i, "do", attempt, self.now + step.timeout)

    def on_event(self, event: CloudEvent) -> Outcome:
        cause = event.causationid
        if cause is not None and cause in self.s.issued:
            i, phase, attempt = self.s.issued[cause]
            if phase == "undo":
                return self.on_compensation_reply(i, event, attempt)
            return self.on_step_outcome(i, event, attempt)
        for i, step in enumerate(self.d.steps):
            if (
                step.observes is not None
                and event.type in (*step.success, *step.failure)
                and self.s.steps[i].status in (StepStatus.PENDING, StepStatus.RUNNING)
            ):
                return self.on_step_outcome(i, event)
        for i, step in enumerate(self.d.steps):
            if step.observes is not None and event.type in (*step.success, *step.failure):
                return self.on_step_outcome(i, event)
        return self.reject(f"event {event.type!r} matches no step", Outcome.UNKNOWN)

    def on_step_outcome(self, i: int, event: CloudEvent, attempt: int | None = None) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        success = event.type in step.success
        if not success and event.type not in step.failure:
            expected = ", ".join((*step.success, *step.failure))
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
        if st.status not in (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING_RETRY):
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
            self.step_failed(i, reason=_reason(event))
        if i in self.d.stages[self.s.stage]:
            self.resume_if_repaired()
            self.evaluate_stage()
        return Outcome.APPLIED

    def late(self, st: StepState, event_type: str | None = None) -> Outcome:
        if event_type is not None and any(
            _same_type(event_type, seen) for seen in (st.outcome, st.comp_outcome)
        ):
            return self.reject("already applied", Outcome.DUPLICATE)
        return self.reject("arrived after the step was settled", Outcome.LATE)

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
        elif all(self.s.steps[i].status is StepStatus.SUCCEEDED for i in stage):
            self.enter_stage(self.s.stage + 1)

    # -- backward -----------------------------------------------------------------------

    def begin_compensation(self, reason: str) -> None:
        for i in self.d.stages[self.s.stage]:
            st = self.s.steps[i]
            if st.status in (StepStatus.RUNNING, StepStatus.WAITING_RETRY):
                st.status = StepStatus.CANCELLED
                st.finished_at = self.now
                self.clear_timers(i, "do")
        self.s.status = SagaStatus.COMPENSATING
        self.s.phase = "backward"
        self.s.compensation_plan = [
            i
            for i in reversed(range(len(self.d.steps)))
            if self.d.steps[i].compensation is not None and self.needs_compensation(i)
        ]
        self.emit("saga.compensating", data={"reason": reason})
        self.continue_compensation()

    def needs_compensation(self, i: int) -> bool:
        status = self.s.steps[i].status
        if status is StepStatus.SUCCEEDED:
            return True
        return status in IN_DOUBT and self.d.steps[i].compensate_in_doubt

    def continue_compensation(self) -> None:
        if self.s.status is not SagaStatus.COMPENSATING:
            return
        plan = self.s.compensation_plan
        todo = [i for i in plan if self.s.steps[i].status not in UNDONE]
        if not todo:
            self.finish(SagaStatus.ABORTED if self.s.abort_reason else SagaStatus.COMPENSATED)
            return
        batch = todo if self.d.compensation == "parallel" else todo[:1]
        for i in batch:
            if self.s.steps[i].status is not StepStatus.COMPENSATING:
                self.issue_compensation(i, self.s.steps[i].comp_attempt + 1)

    def issue_compensation(self, i: int, attempt: int) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        st.status = StepStatus.COMPENSATING
        st.comp_attempt = attempt
        self.send(i, "undo", attempt, comp.type, comp.topic)
        if comp.timeout is not None:
            self.set_timer("deadline", i, "undo", attempt, self.now + comp.timeout)

    def on_compensation_reply(self, i: int, event: CloudEvent, attempt: int) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        if st.status is not StepStatus.COMPENSATING:
            return self.late(st, event.type)
        if event.type in comp.failure and (
            attempt < st.comp_attempt or self.retry_armed(i, "undo")
        ):
            # A newer attempt is in flight, or one is already scheduled: this "no" is stale.
            return self.late(st, event.type)
        if event.type in comp.success:
            self.clear_timers(i, "undo")
            st.status = StepStatus.COMPENSATED
            st.comp_outcome = event.type
            self.s.context.update(event.data)
            self.signals.append(Signal("compensation", step.name, label="ok"))
            self.record("step.compensated", step.name, event.type)
            self.continue_compensation()
            return Outcome.APPLIED
        if event.type in comp.failure:
            self.clear_timers(i, "undo")
            self.compensation_failed(i, _reason(event))
            return Outcome.APPLIED
        expected = ", ".join((*comp.success, *comp.failure))
        return self.reject(
            f"compensation of {step.name!r} got {event.type!r}, expected one of: {expected}",
            Outcome.UNKNOWN,
        )

    def compensation_failed(self, i: int, reason: str) -> None:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        if comp.retry.allows_another(st.comp_attempt - st.budget_base):
            self.signals.append(Signal("retry", step.name))
            due = self.now + comp.retry.backoff(st.comp_attempt - st.budget_base)
            self.set_timer("retry", i, "undo", st.comp_attempt, due)
            self.record("compensation.retry", step.name, reason)
            return
        st.status = StepStatus.COMPENSATION_FAILED
        st.comp_outcome = reason
        self.signals.append(Signal("compensation", step.name, label="gave_up"))
        self.park(f"compensation of {step.name!r} gave up: {reason}")

    def on_success_while_backward(self, i: int, event: CloudEvent) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        covered = st.status in UNDONE or st.status in (
            StepStatus.COMPENSATING,
            StepStatus.COMPENSATION_FAILED,
        )
        planned = i in self.s.compensation_plan
        if planned and st.status in IN_DOUBT and st.outcome != event.type and event.data:
            # Compensated in its turn anyway; what the reply says (a payment id, say) is
            # what that compensation needs to undo the right thing.
            st.outcome = event.type
            self.s.context.update(event.data)
            self.record("step.late_success", step.name, event.type)
            return Outcome.APPLIED
        if step.compensation is None or covered or planned:
            # Planned steps are compensated in their turn, whatever their outcome was.
            return self.late(st, event.type)
        # The step took effect after we gave up on it: undo it now, whatever the saga's state.
        st.outcome = event.type
        self.s.context.update(event.data)
        self.record("step.late_success", step.name, event.type)
        if i not in self.s.compensation_plan:
            self.s.compensation_plan.append(i)
        self.issue_compensation(i, st.comp_attempt + 1)
        return Outcome.APPLIED

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

    # -- endings and output -------------------------------------------------------------

    def park(self, reason: str) -> None:
        if self.s.status is SagaStatus.FAILED:
            # Already parked for an operator: one saga.failed per parking, not one per cause.
            self.record("parked.again", None, reason)
            return
        self.s.status = SagaStatus.FAILED
        self.s.failure = reason
        self.s.finished_at = self.now
        self.emit("saga.failed", data={"reason": reason, "phase": self.s.phase})
        self.signals.append(Signal("finished", None, self.now - self.s.started_at, "failed"))

    def finish(self, status: SagaStatus, resolved: str | None = None) -> None:
        self.s.status = status
        self.s.finished_at = self.now
        self.s.timers.clear()
        data: dict[str, Any] = {"context": self.s.context}
        if self.s.failure:
            data["reason"] = self.s.failure
        if resolved is not None:
            data["resolved_by_operator"] = resolved
        self.emit(f"saga.{status.value}", data=data)
        self.signals.append(Signal("finished", None, self.now - self.s.started_at, status.value))

    def send(self, i: int, phase: Phase, attempt: int, type_: str, topic: str) -> None:
        step = self.d.steps[i]
        cid = command_id(self.s.saga_id, step.name, phase, attempt)
        self.s.issued[cid] = (i, phase, attempt)
        event = _event(cid, type_, self.now, self.s.saga_id, dict(self.s.context))
        self.commands.append(Outgoing(topic, event))
        self.record("command.sent", step.name, f"{type_} attempt {attempt}")

    def set_timer(self, kind: str, i: int, phase: Phase, attempt: int, due: float) -> None:
        token = derived_id(self.s.saga_id, kind, i, phase, attempt)
        self.s.timers[token] = TimerSpec(kind=kind, step=i, phase=phase, attempt=attempt, due=due)  # type: ignore[arg-type]
        self.timers.append(TimerRequest(token, due))

    def retry_armed(self, i: int, phase: Phase) -> bool:
        return any(
            spec.kind == "retry" and spec.step == i and spec.phase == phase
            for spec in self.s.timers.values()
        )

    def clear_timers(self, i: int, phase: Phase) -> None:
        stale = [t for t, spec in self.s.timers.items() if spec.step == i and spec.phase == phase]
        for token in stale:
            del self.s.timers[token]

    def emit(self, type_: str, step: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.s.lifecycle_seq += 1
        payload = {"saga": self.d.name, "version": self.d.version, "status": self.s.status.value}
        if step is not None:
            payload["step"] = step
        payload.update(data or {})
        lifecycle_id = derived_id(self.s.saga_id, "lifecycle", self.s.lifecycle_seq)
        self.lifecycle.append(_event(lifecycle_id, type_, self.now, self.s.saga_id, payload))
        self.record(type_, step, None)

    def record(self, event: str, step: str | None, detail: str | None) -> None:
        self.s.history.append(HistoryEntry(at=self.now, event=event, step=step, detail=detail))


def _same_type(event_type: str, recorded: str | None) -> bool:
    """True if ``recorded`` (an outcome, or a failure reason built by `_reason`) is that type."""
    return recorded is not None and (
        recorded == event_type or recorded.startswith(f"{event_type}: ")
    )


def _event(id_: str, type_: str, now: float, saga_id: str, data: dict[str, Any]) -> CloudEvent:
    # Validated by pydantic-core from a dict: three times cheaper than model_construct,
    # which loops over the fields in Python.
    return CloudEvent.model_validate(
        {
            "id": id_,
            "source": SOURCE,
            "type": type_,
            "time": datetime.fromtimestamp(now, UTC),
            "sagaid": saga_id,
            "data": data,
        }
    )


def _reason(event: CloudEvent) -> str:
    detail = event.data.get("reason")
    return f"{event.type}: {detail}" if detail else event.type
