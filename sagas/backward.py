"""Going backward: compensations in order, their replies and retries, and late effects.

A mixin of the saga run (`sagas.machine`); see there for the rules it keeps.

A late effect is a success for a step that the saga has given up on (failed,
timed out, cancelled, already compensated, or never reached), seen while the
saga goes backward or after it ended compensated or aborted. No one wants that
effect, and in a choreography no one else can undo it (there is no command the
service could refuse), so the engine compensates it at once, with the next
compensation attempt's id and a fresh retry budget:

* the step's success was seen before: a duplicate, nothing to do;
* its compensation is in flight, sent before this success was seen (it may have
  reached the service first and been a no-op): another one follows it;
* it waits in the compensation plan (in doubt): compensated in its turn;
* its compensation gave up (the saga is parked): the operator's retry covers it;
* otherwise (undone already, or never planned): compensated now;
* the step has no compensation: recorded and counted, nothing to send.

Each one shows on ``saga.lifecycle`` (``saga.step.late_succeeded``, then
``saga.step.late_compensated``) and in ``saga_late_effects_total``; the saga's
terminal event stays what it was unless a late compensation gives up, which
parks the saga as ``failed``.
"""

from __future__ import annotations

from events.envelope import CloudEvent
from sagas.messages import Outcome, Signal
from sagas.run_output import RunOutput, make_event, reason_of
from sagas.state import IN_DOUBT, UNDONE, SagaStatus, StepStatus

#: a late effect's fate, the ``action`` of its lifecycle event and metric
COMPENSATE = "compensate"
AFTER_CURRENT = "compensate_after_current"
IN_TURN = "compensate_in_turn"
PARKED = "parked"
NOTHING_TO_UNDO = "nothing_to_undo"


class Backward(RunOutput):
    """Compensation of a saga that failed or was aborted, and of effects that came late."""

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
        self.drain_held()
        self.continue_compensation()

    def drain_held(self) -> None:
        """Events held for steps the saga will now never reach: their successes came late."""
        held, self.s.held = self.s.held, []
        for h in held:
            if h.type in self.d.steps[h.step].success:
                self.on_success_while_backward(
                    h.step, make_event(h.id, h.type, self.now, self.s.saga_id, h.data)
                )

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
        st.recompensate = False  # this attempt is sent after every success seen so far
        self.send(i, "undo", attempt, comp.type, comp.topic)
        self.set_timer("deadline", i, "undo", attempt, self.now + comp.timeout)

    def on_compensation_reply(self, i: int, event: CloudEvent, attempt: int) -> Outcome:
        step, st = self.d.steps[i], self.s.steps[i]
        comp = step.compensation
        assert comp is not None
        if st.status is not StepStatus.COMPENSATING or attempt < st.undo_from:
            # Settled, or an answer to an attempt sent before a late effect it cannot undo.
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
            if st.recompensate:
                # Sent before the step's late success was seen: it may have been a no-op.
                self.compensate_again(i)
                return Outcome.APPLIED
            if st.late > st.late_undone:
                st.late_undone = st.late
                self.emit("saga.step.late_compensated", step.name, {"type": event.type})
            self.continue_compensation()
            return Outcome.APPLIED
        if event.type in comp.failure:
            self.clear_timers(i, "undo")
            self.compensation_failed(i, reason_of(event))
            return Outcome.APPLIED
        expected = ", ".join(comp.success + comp.failure)
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
        if st.outcome in step.success:
            return self.late(st, event.type)  # this step's effect is known already
        # What the event says (a booking id, say) is what the compensation needs.
        st.outcome = event.type
        self.s.context.update(event.data)
        if step.compensation is None:
            action = NOTHING_TO_UNDO
        elif st.status is StepStatus.COMPENSATING:
            st.recompensate = True
            action = AFTER_CURRENT
        elif st.status is StepStatus.COMPENSATION_FAILED:
            action = PARKED
        elif i in self.s.compensation_plan and st.status not in UNDONE:
            action = IN_TURN
        else:
            action = COMPENSATE
        st.late += 1
        self.signals.append(Signal("late_effect", step.name, label=action))
        self.emit("saga.step.late_succeeded", step.name, {"type": event.type, "action": action})
        if action == COMPENSATE:
            if i not in self.s.compensation_plan:
                self.s.compensation_plan.append(i)
                self.s.compensation_plan.sort(reverse=True)
            self.compensate_again(i)
        return Outcome.APPLIED

    def compensate_again(self, i: int) -> None:
        """A new compensation of a step, for an effect seen after its last one was sent."""
        st = self.s.steps[i]
        st.budget_base = st.comp_attempt  # a fresh retry budget
        st.undo_from = st.comp_attempt + 1
        self.issue_compensation(i, st.comp_attempt + 1)
