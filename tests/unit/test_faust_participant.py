"""The faust adapter's contract without faust (issue 20): one answer per command id, the
same replies for a re-sent command, causationid set, records that are not CloudEvents
skipped. A stand-in app records what the agent does; the real faust runs in
tests/integration/test_faust_participant.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from events.codec import decode, encode
from events.envelope import CloudEvent, new_event
from sagas.participants.faust_participant import serve_saga_step
from sagas.participants.participant_store import Outgoing


class StandInApp:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.tables: dict[str, dict[str, Any]] = {}
        self.agents: list[Callable[[Any], Any]] = []

    def topic(self, name: str, **_: Any) -> Any:
        async def send(key: bytes, value: bytes, headers: Any) -> None:
            self.sent.append((name, key, value))

        return SimpleNamespace(name=name, send=send)

    def Table(self, name: str, **_: Any) -> dict[str, Any]:  # noqa: N802 - faust's name
        return self.tables.setdefault(name, {})

    def agent(self, topic: Any, name: str) -> Callable[[Any], Any]:
        def register(fn: Callable[[Any], Any]) -> Any:
            self.agents.append(fn)
            return fn

        return register


def stream(*values: bytes) -> Any:
    async def events() -> AsyncIterator[Any]:
        for n, value in enumerate(values):
            message = SimpleNamespace(headers=[], topic="shipping.commands", partition=0, offset=n)
            yield SimpleNamespace(value=value, message=message)

    return SimpleNamespace(events=events)


def test_each_command_is_answered_once_and_a_resent_one_gets_the_same_reply() -> None:
    app, calls = StandInApp(), []

    def respond(command: CloudEvent) -> list[Outgoing]:
        calls.append(command.id)
        reply = command.reply("shipping.scheduled", "faust-test", {"n": len(calls)})
        return [Outgoing("shipping.replies", reply)]

    serve_saga_step(app, name="shipping", command_topic="shipping.commands", respond=respond)
    cmd = new_event("shipping.schedule", source="c", sagaid="s-1", id="cmd-1")
    other = new_event("shipping.schedule", source="c", sagaid="s-2", id="cmd-2")
    value, _ = encode(cmd)
    asyncio.run(app.agents[0](stream(value, b"not json", value, encode(other)[0])))
    assert calls == ["cmd-1", "cmd-2"]
    replies = [decode(v) for _, _, v in app.sent]
    assert [r.sagaid for r in replies] == ["s-1", "s-1", "s-2"]
    assert replies[0] == replies[1], "a re-sent command gets the recorded reply"
    assert replies[0].causationid == "cmd-1" and replies[2].causationid == "cmd-2"
    assert all(key == r.sagaid.encode() for (_, key, _), r in zip(app.sent, replies, strict=True))
    assert set(app.tables["shipping-answered"]) == {"cmd-1", "cmd-2"}


def test_types_outside_handles_are_left_alone_and_async_responders_work() -> None:
    app = StandInApp()

    async def respond(command: CloudEvent) -> list[Outgoing]:
        return [Outgoing("shipping.replies", command.reply("shipping.cancelled", "t", {}))]

    serve_saga_step(app, name="s", command_topic="c", respond=respond, handles={"shipping.cancel"})
    ignored = new_event("payment.captured", source="x", sagaid="s-1")
    cancel = new_event("shipping.cancel", source="x", sagaid="s-1")
    asyncio.run(app.agents[0](stream(encode(ignored)[0], encode(cancel)[0])))
    assert [decode(v).type for _, _, v in app.sent] == ["shipping.cancelled"]
