"""Unit-test your saga in milliseconds: the real state machine, scripted participants,
virtual time.

    kit = SagaTestKit(order_saga)
    kit.on("inventory.reserve").reply("inventory.reserved", {"reservation": "r1"})
    kit.on("payment.authorize").reply("payment.declined", {"reason": "over limit"})
    kit.on("inventory.release").reply("inventory.released")
    saga = kit.start("order-1", {"amount": 30})
    saga.expect_status("compensated")
    saga.expect_commands("inventory.reserve", "payment.authorize", "inventory.release")

A participant left unscripted never answers; `kit.advance(seconds)` moves the
virtual clock and fires the timers that fall due, in order, so timeouts and
retries are tested without waiting. Every message goes through the same
`decide()` the coordinator runs.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.envelope import CloudEvent, derived_id
from sagas.definition import SagaDefinition
from sagas.machine import decide
from sagas.messages import (
    Abort,
    Decision,
    Message,
    Observed,
    Outcome,
    Outgoing,
    Resolve,
    RetryFailed,
    Skip,
    StartSaga,
    TimerFired,
)
from sagas.state import SagaState

Responder = Callable[[CloudEvent], tuple[str, dict[str, Any]] | None]


@dataclass
class Script:
    """What a scripted participant answers to one command type, call after call."""

    answers: deque[Responder] = field(default_factory=deque)
    last: Responder | None = None

    def reply(
        self, type_: str, data: dict[str, Any] | None = None, *, times: int | None = None
    ) -> Script:
        """Answer with ``type_``; ``times`` limits it to that many calls (then the next)."""
        responder: Responder = lambda _cmd: (type_, dict(data or {}))  # noqa: E731
        return self._add(responder, times)

    def silence(self, *, times: int | None = None) -> Script:
        """Never answer (``times`` calls, or forever)."""
        return self._add(lambda _cmd: None, times)

    def respond(self, responder: Responder, *, times: int | None = None) -> Script:
        """Answer with whatever ``responder(command)`` returns: (type, data) or None."""
        return self._add(responder, times)

    def _add(self, responder: Responder, times: int | None) -> Script:
        if times is None:
            self.last = responder
        else:
            self.answers.extend([responder] * times)
        return self

    def next(self, command: CloudEvent) -> tuple[str, dict[str, Any]] | None:
        if self.answers:
            return self.answers.popleft()(command)
        return self.last(command) if self.last is not None else None


class SagaTestKit:
    """An in-memory coordinator for one definition, on a virtual clock."""

    def __init__(self, definition: SagaDefinition, *, start_time: float = 1_700_000_000.0) -> None:
        self.definition = definition
        self.now = start_time
        self.states: dict[str, SagaState] = {}
        self.sent: list[Outgoing] = []
        self.lifecycle: list[CloudEvent] = []
        self.decisions: list[Decision] = []
        self._scripts: dict[str, Script] = {}
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._inbox: deque[tuple[str, Message]] = deque()

    def on(self, command_type: str) -> Script:
        """The script of the participant that handles ``command_type``."""
        return self._scripts.setdefault(command_type, Script())

    def start(self, saga_id: str, data: dict[str, Any] | None = None) -> SagaProbe:
        self.deliver(saga_id, StartSaga(saga_id, dict(data or {})))
        return SagaProbe(self, saga_id)

    def deliver(self, saga_id: str, message: Message) -> Outcome:
        """Hand one message to the machine, then run until nothing more happens now."""
        self._inbox.append((saga_id, message))
        first: Outcome | None = None
        while self._inbox:
            sid, msg = self._inbox.popleft()
            outcome = self._apply(sid, msg)
            first = first or outcome
        assert first is not None
        return first

    def publish(
        self,
        saga_id: str,
        type_: str,
        data: dict[str, Any] | None = None,
        causationid: str | None = None,
    ) -> Outcome:
        """An event from outside, as a participant would publish it (choreography)."""
        self._seq += 1
        event = CloudEvent(
            id=derived_id("test-event", saga_id, type_, self._seq),
            source="sagas.testing",
            type=type_,
            sagaid=saga_id,
            causationid=causationid,
            data=dict(data or {}),
        )
        return self.deliver(saga_id, Observed(event))

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every timer that falls due, in order."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            due, _, saga_id, token = heapq.heappop(self._timers)
            self.now = max(self.now, due)
            self.deliver(saga_id, TimerFired(token))
        self.now = until

    def _apply(self, saga_id: str, message: Message) -> Outcome:
        decision = decide(self.definition, self.states.get(saga_id), message, self.now)
        self.decisions.append(decision)
        if decision.state is not None:
            self.states[saga_id] = decision.state
        self.lifecycle.extend(e.cloud_event() for e in decision.lifecycle)
        for timer in decision.timers:
            self._seq += 1
            heapq.heappush(self._timers, (timer.due, self._seq, saga_id, timer.token))
        for out in decision.commands:
            self.sent.append(out)
            script = self._scripts.get(out.event.type)
            answer = script.next(out.event) if script is not None else None
            if answer is not None:
                type_, data = answer
                reply = out.event.reply(type_, source="sagas.testing", data=data)
                self._inbox.append((saga_id, Observed(reply)))
        return decision.outcome


class SagaProbe:
    """Assertions about one saga of a `SagaTestKit`."""

    def __init__(self, kit: SagaTestKit, saga_id: str) -> None:
        self.kit = kit
        self.saga_id = saga_id

    @property
    def state(self) -> SagaState:
        return self.kit.states[self.saga_id]

    @property
    def commands(self) -> list[CloudEvent]:
        return [o.event for o in self.kit.sent if o.event.sagaid == self.saga_id]

    @property
    def command_types(self) -> list[str]:
        return [c.type for c in self.commands]

    @property
    def lifecycle_types(self) -> list[str]:
        return [e.type for e in self.kit.lifecycle if e.sagaid == self.saga_id]

    def expect_status(self, status: str) -> SagaProbe:
        got = self.state.status.value
        assert got == status, (
            f"saga {self.saga_id!r}: expected status {status!r}, got {got!r}; "
            f"history: {[h.event + (':' + h.step if h.step else '') for h in self.state.history]}"
        )
        return self

    def expect_commands(self, *types: str) -> SagaProbe:
        assert self.command_types == list(types), (
            f"saga {self.saga_id!r}: expected commands {list(types)}, got {self.command_types}"
        )
        return self

    def reply(
        self, type_: str, data: dict[str, Any] | None = None, *, to: str | None = None
    ) -> Outcome:
        """Answer the last command (or the last one of type ``to``)."""
        candidates = [c for c in self.commands if to is None or c.type == to]
        assert candidates, f"saga {self.saga_id!r}: no command {to or ''} to reply to"
        reply = candidates[-1].reply(type_, source="sagas.testing", data=data or {})
        return self.kit.deliver(self.saga_id, Observed(reply))

    def abort(self, reason: str = "test abort") -> Outcome:
        return self.kit.deliver(self.saga_id, Abort(reason))

    def retry(self) -> Outcome:
        return self.kit.deliver(self.saga_id, RetryFailed())

    def skip(self, step: str, reason: str) -> Outcome:
        return self.kit.deliver(self.saga_id, Skip(step, reason))

    def resolve(self, reason: str) -> Outcome:
        return self.kit.deliver(self.saga_id, Resolve(reason))
