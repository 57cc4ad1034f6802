"""Serve saga steps from a faust-streaming app: the wire contract in a faust agent.

    import faust
    from sagas.participants.faust_participant import serve_saga_step

    app = faust.App("shipping", broker="kafka://localhost:9092", store="memory://")
    serve_saga_step(app, name="shipping", command_topic="shipping.commands", respond=respond)
    app.main()

``respond(command) -> [Outgoing(topic, reply), ...]`` (plain or ``async``) is called
once per command id: the agent keeps every answered id with its replies in a faust
Table (changelog-backed, co-partitioned with the commands: a command's id is
derived from its saga, whose records all share one partition), and answers a
redelivered or re-sent command with the recorded replies, doing nothing else.
Replies are published keyed by saga id; build them with ``command.reply(...)``,
which sets ``causationid``. A record that is not a CloudEvent is logged and skipped
(faust has no dead-letter topic of ours; `sagas.participants.participant.Participant` has).

faust-streaming is an optional extra (``pip install 'sagastream[faust]'``): this
module imports it only when an agent is made. The coordinator left faust (DESIGN.md,
"Real components"); participants are welcome to use it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import orjson

from events.codec import decode, encode
from events.envelope import CloudEvent
from events.errors import DecodeError
from sagas.participants.participant_store import Outgoing

log = logging.getLogger("sagas.participants.faust_participant")

Respond = Callable[[CloudEvent], Sequence[Outgoing] | Awaitable[Sequence[Outgoing]]]


def recorded(outputs: Sequence[Outgoing]) -> str:
    """Replies as the Table keeps them: JSON text (faust's default value serializer)."""
    rows = []
    for out in outputs:
        value, _ = encode(out.event)
        rows.append({"topic": out.topic, "value": value.decode()})
    return orjson.dumps(rows).decode()


def replayed(text: str) -> list[Outgoing]:
    return [Outgoing(r["topic"], decode(r["value"].encode())) for r in orjson.loads(text)]


def serve_saga_step(
    app: Any,
    *,
    name: str,
    command_topic: str,
    respond: Respond,
    handles: Collection[str] | None = None,
    partitions: int | None = None,
) -> Any:
    """Add the agent that serves ``command_topic`` to faust ``app``; returns the agent.

    ``handles``: command types to answer (others are skipped); ``partitions``: of the
    command topic (the Table's changelog must match it; default: the app's
    ``topic_partitions``)."""
    commands = app.topic(command_topic, key_serializer="raw", value_serializer="raw")
    table_args: dict[str, Any] = {"key_type": str, "value_type": str}
    if partitions is not None:
        table_args["partitions"] = partitions
    answered = app.Table(f"{name}-answered", **table_args)
    topics: dict[str, Any] = {}

    async def publish(outputs: Sequence[Outgoing]) -> None:
        for out in outputs:
            if out.topic not in topics:
                topics[out.topic] = app.topic(
                    out.topic, key_serializer="raw", value_serializer="raw"
                )
            value, headers = encode(out.event)
            await topics[out.topic].send(
                key=out.event.sagaid.encode(), value=value, headers=headers
            )

    async def serve(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                command = decode(
                    event.value,
                    list(message.headers or ()),
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
            except DecodeError as exc:
                log.warning("%s: skipped a record that is not a CloudEvent: %s", name, exc)
                continue
            if handles is not None and command.type not in handles:
                continue
            seen = answered.get(command.id)
            if seen is not None:
                await publish(replayed(seen))  # a re-sent command: the same answer
                continue
            result = respond(command)
            outputs = await result if inspect.isawaitable(result) else result
            answered[command.id] = recorded(outputs)
            await publish(outputs)

    return app.agent(commands, name=f"{name}-commands")(serve)
