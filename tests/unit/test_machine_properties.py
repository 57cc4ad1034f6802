"""Properties of the state machine for any definition and any sequence of messages.

Hypothesis generates a definition (1-6 steps; compensable or not; timeouts; retries;
an optional pivot with nothing compensable at or after it; parallel groups of adjacent
steps; reverse or parallel compensation) and a run against it: participants answer yes
or no to any command still open (old attempts included), replies are re-delivered,
time jumps, an operator may abort. Then time runs out and every undo is answered with
success, so every saga must end, and what it did is checked against what happened.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from events.envelope import CloudEvent
from sagas.builder import definition_from_dict
from sagas.definition import SagaDefinition
from sagas.messages import Message, Observed, Outcome, RetryFailed
from sagas.state import SagaStatus, StepStatus
from sagas.testing import SagaProbe, SagaTestKit

TERMINAL_EVENTS = {f"saga.{s.value}" for s in SagaStatus if s.terminal}


@st.composite
def definitions(draw: st.DrawFn) -> SagaDefinition:
    n = draw(st.integers(1, 6))
    pivot = draw(st.none() | st.integers(0, n - 1))
    steps: list[dict[str, Any]] = []
    for i in range(n):
        spec: dict[str, Any] = {
            "name": f"s{i}",
            "command": {"type": f"s{i}.do", "topic": f"t{i}.commands"},
            "reply_topic": f"t{i}.replies",
            "success": [f"s{i}.ok"],
            "failure": [f"s{i}.no"],
            "timeout": draw(st.sampled_from([1.0, 3.0, 10.0])),
            "retry": {
                "attempts": draw(st.integers(1, 3)),
                "initial": draw(st.sampled_from([0.1, 1.0, 4.0])),
            },
            "compensate_in_doubt": draw(st.booleans()),
            "pivot": i == pivot,
        }
        if (pivot is None or i < pivot) and draw(st.booleans()):
            spec["compensation"] = {
                "type": f"s{i}.undo",
                "topic": f"t{i}.commands",
                "success": [f"s{i}.undone"],
                "failure": [f"s{i}.stuck"],
                "timeout": draw(st.sampled_from([2.0, 6.0, 600.0])),
                "retry": {
                    "attempts": draw(st.integers(1, 3)),
                    "initial": draw(st.sampled_from([0.1, 1.0])),
                },
            }
        steps.append(spec)
    for i in range(1, n):
        if pivot not in (i - 1, i) and draw(st.booleans()):
            group = steps[i - 1].get("group") or f"g{i}"
            steps[i - 1]["group"] = steps[i]["group"] = group
    order = draw(st.sampled_from(["reverse", "parallel"]))
    return definition_from_dict({"name": "prop", "steps": steps, "compensation": order})


actions = st.lists(
    st.one_of(
        # Twice as likely as the rest, and "yes" three times out of four.
        st.tuples(st.just("reply"), st.integers(0, 63), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("reply"), st.integers(0, 63), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("duplicate"), st.integers(0, 63)),
        st.tuples(st.just("advance"), st.sampled_from([0.05, 0.3, 1.0, 2.5, 6.0, 15.0])),
        st.tuples(st.just("nothing")),
    ),
    max_size=40,
)


@dataclass
class Facts:
    """What happened, as the participants and the operator saw it."""

    did: set[int] = field(default_factory=set)  # a "yes" to one of the step's commands
    refused: set[int] = field(default_factory=set)  # a "no" the saga took as its answer
    late_yes: set[int] = field(default_factory=set)  # a first "yes" taken going backward
    undone_at: dict[int, int] = field(default_factory=dict)  # step -> decision that undid it
    operator: bool = False  # an operator command was applied
    after_end: bool = False  # a message was applied to a saga that had ended


class RecordingKit(SagaTestKit):
    """The test kit, checking on every message that decide() leaves its input alone and
    that nothing is given up before its retry budget is spent."""

    def __init__(self, definition: SagaDefinition) -> None:
        super().__init__(definition)
        self.issued_in: dict[str, int] = {}  # command id -> index of the decision
        self.budgets_reset = False  # an operator retry grants fresh budgets

    def _apply(self, saga_id: str, message: Message) -> Outcome:
        state = self.states.get(saga_id)
        before = asdict(state) if state is not None else None
        sent = len(self.sent)
        outcome = super()._apply(saga_id, message)
        if state is not None:
            assert asdict(state) == before, f"decide() mutated its input on {message}"
        for out in self.sent[sent:]:
            self.issued_in.setdefault(out.event.id, len(self.decisions) - 1)
        if isinstance(message, RetryFailed) and outcome is Outcome.APPLIED:
            self.budgets_reset = True
        if not self.budgets_reset:
            self.check_budgets(saga_id)
        return outcome

    def check_budgets(self, saga_id: str) -> None:
        decision, d = self.decisions[-1], self.definition
        sent = [parse(o.event.type) for o in self.sent if o.event.sagaid == saga_id]
        pivot = d.pivot_index if d.pivot_index is not None else len(d.steps)
        for announced in decision.lifecycle:
            data = announced.data
            if announced.type == "saga.step.failed":
                i = d.step_index(data["step"])
                if data["reason"] == "timeout" or i > pivot:
                    assert sent.count((i, "do")) == d.steps[i].retry.attempts, data
            if announced.type == "saga.failed" and data["phase"] == "backward":
                state = decision.state
                assert state is not None
                for i, st_ in enumerate(state.steps):
                    comp = d.steps[i].compensation
                    if st_.status is StepStatus.COMPENSATION_FAILED and comp is not None:
                        # A success that arrives after its step's cancel went out is undone
                        # by a cancel of its own, with a fresh budget (issue 22): the last
                        # round spends its whole budget, an earlier one may be cut short.
                        rounds = 1 + self.late_successes(i)
                        undos = sent.count((i, "undo"))
                        assert comp.retry.attempts <= undos <= comp.retry.attempts * rounds, (
                            i,
                            sent,
                        )

    def late_successes(self, step: int) -> int:
        name = self.definition.steps[step].name
        return sum(
            1
            for decision in self.decisions
            for announced in decision.lifecycle
            if announced.type == "saga.step.late_succeeded" and announced.data["step"] == name
        )


def parse(type_: str) -> tuple[int, str]:
    """'s3.undo' -> (3, 'undo')."""
    name, action = type_.split(".")
    return int(name[1:]), action


def deliver(saga: SagaProbe, facts: Facts, reply: CloudEvent, command: CloudEvent) -> None:
    before, decision = copy.deepcopy(saga.state), len(saga.kit.decisions)
    outcome = saga.kit.deliver(saga.saga_id, Observed(reply))
    i, action = parse(command.type)
    yes = reply.type.endswith((".ok", ".undone"))
    if action == "do" and yes:
        if outcome is Outcome.APPLIED and before.phase == "backward" and i not in facts.did:
            facts.late_yes.add(i)
        facts.did.add(i)
    if action == "undo" and yes and outcome is Outcome.APPLIED:
        facts.undone_at[i] = decision
    if action == "do" and not yes and outcome is Outcome.APPLIED:
        facts.refused.add(i)
    if outcome is Outcome.APPLIED and before.terminal:
        facts.after_end = True


def answer(command: CloudEvent, yes: bool, reason: bool = False) -> CloudEvent:
    i, action = parse(command.type)
    if action == "do":
        type_ = f"s{i}.ok" if yes else f"s{i}.no"
    else:
        type_ = f"s{i}.undone" if yes else f"s{i}.stuck"
    data = {f"s{i}_{action}": command.id[:8]} if yes else ({"reason": "no"} if reason else {})
    return command.reply(type_, source="participant", data=data)


#: SAGA_PROPERTY_EXAMPLES=20000 for a longer hunt (about a minute).
EXAMPLES = int(os.environ.get("SAGA_PROPERTY_EXAMPLES", "200"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=definitions(), run=actions, abort_at=st.none() | st.integers(0, 40))
def test_every_saga_ends_and_undoes_exactly_what_took_effect(
    definition: SagaDefinition, run: list[tuple[Any, ...]], abort_at: int | None
) -> None:
    kit = RecordingKit(definition)
    saga = kit.start("p-1", {"order": "p-1"})
    facts = Facts()
    answered: set[str] = set()
    replies: list[tuple[CloudEvent, CloudEvent]] = []

    def open_commands(action: str | None = None) -> list[CloudEvent]:
        return [
            c
            for c in saga.commands
            if c.id not in answered and (action is None or parse(c.type)[1] == action)
        ]

    for n, act in enumerate(run):
        if n == abort_at and saga.abort("generated") is Outcome.APPLIED:
            facts.operator = True
        if act[0] == "reply" and (candidates := open_commands()):
            command = candidates[act[1] % len(candidates)]
            answered.add(command.id)
            reply = answer(command, yes=act[2] > 0, reason=act[3])
            replies.append((reply, command))
            deliver(saga, facts, reply, command)
        elif act[0] == "duplicate" and replies:
            reply, command = replies[act[1] % len(replies)]
            deliver(saga, facts, reply, command)
        elif act[0] == "advance":
            kit.advance(act[1])

    # The end: time runs out, every undo succeeds; an undo that gave up is retried.
    for _ in range(50):
        for command in open_commands("undo"):
            answered.add(command.id)
            deliver(saga, facts, answer(command, yes=True), command)
        kit.advance(1000)
        state = saga.state
        if open_commands("undo"):
            continue
        if state.status is SagaStatus.FAILED and state.phase == "backward":
            assert saga.retry() is Outcome.APPLIED
            facts.operator = True
            continue
        if state.terminal:
            break
    state = saga.state
    assert state.terminal, f"the saga never ended: {state.status}"
    event(f"ended {state.status.value} ({state.phase})")
    for name in ("late_yes", "refused"):
        if getattr(facts, name):
            event(name)
    if facts.after_end:
        event("applied after the end")
    if facts.operator:
        event("operator acted")

    # Undone: exactly the compensable steps that took effect or may have.
    undos = [c for c in saga.commands if parse(c.type)[1] == "undo"]
    undone = {parse(c.type)[0] for c in undos}
    if state.phase == "forward":
        assert not undos, "a saga that went only forward undid something"
    else:
        expected = {
            i
            for i, step in enumerate(definition.steps)
            if step.compensation is not None
            and (
                i in facts.did
                or (
                    step.compensate_in_doubt
                    and i not in facts.refused
                    and any(parse(c.type) == (i, "do") for c in saga.commands)
                )
            )
        }
        assert undone == expected
        assert state.status in (SagaStatus.COMPENSATED, SagaStatus.ABORTED)

    pivot = definition.pivot_index
    assert pivot is None or all(i < pivot for i in undone)

    # Order: planned undos go one by one, last step first (reverse), or all in one
    # decision (parallel). An undo for a step that took effect late goes out at once.
    first_undo: dict[int, CloudEvent] = {}
    for c in undos:
        first_undo.setdefault(parse(c.type)[0], c)
    planned = [(i, c) for i, c in first_undo.items() if i not in facts.late_yes]
    if definition.compensation == "reverse":
        order = [i for i, _ in planned]
        assert order == sorted(order, reverse=True)
        for (a, _), (_, c) in zip(planned, planned[1:], strict=False):
            assert a in facts.undone_at and kit.issued_in[c.id] >= facts.undone_at[a], (
                f"the undo of {c.type} went out before step {a} was undone"
            )
    else:
        assert len({kit.issued_in[c.id] for _, c in planned}) <= 1

    # One id, one content: a re-sent command is byte for byte the same command.
    content: dict[str, tuple[Any, ...]] = {}
    for out in kit.sent:
        seen = (out.topic, out.event.type, out.event.data)
        assert content.setdefault(out.event.id, seen) == seen

    # One ending, unless an operator acted or something arrived after the end.
    ends = [t for t in saga.lifecycle_types if t in TERMINAL_EVENTS]
    assert ends and ends[-1] == f"saga.{state.status.value}"
    if not facts.operator and not facts.after_end:
        assert len(ends) == 1, ends
