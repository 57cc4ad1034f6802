"""The pure core of a participant: apply inputs once, remember their outputs, replay a log.

    handler(state, event) -> (new state, [Outgoing(topic, event), ...])

`ParticipantCore` wraps such a handler with what every participant needs and
nothing that touches Kafka:

* each input event id takes effect once; a second delivery gets the outputs
  recorded the first time (byte-identical replies, no second effect);
* every new input yields a changelog entry (the input plus its outputs) that
  the runner must make durable *before* it publishes the outputs;
* `replay` rebuilds state and the dedupe map from those entries by running the
  same handler again, so handlers must be deterministic: no clock, no random
  numbers except ones derived from the input (`unit_interval`, `derived_id`).

The recorded outputs, not the recomputed ones, are what a duplicate gets
(outputs carry a wall-clock ``time``); a recomputation that differs in
anything else is counted in ``mismatches``, a sign of a non-deterministic
handler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from events.codec import encode
from events.envelope import CloudEvent

__all__ = [
    "Applied",
    "ChangelogEntry",
    "Handler",
    "Outgoing",
    "ParticipantCore",
    "unit_interval",
]

S = TypeVar("S")

CHANGELOG_VERSION = 1


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event a handler wants published, and where."""

    topic: str
    event: CloudEvent


#: The pure handler of a participant.
Handler = Callable[[S, CloudEvent], tuple[S, Sequence[Outgoing]]]


def unit_interval(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts``: randomness that replays identically."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """An input event that took effect, with the outputs it produced."""

    topic: str
    input: CloudEvent
    outputs: tuple[Outgoing, ...]

    def encode(self) -> bytes:
        # The events are written with the wire codec and spliced in, so a
        # record in the changelog reads like the records on the topics.
        parts = [
            b'{"v":',
            str(CHANGELOG_VERSION).encode(),
            b',"topic":',
            orjson.dumps(self.topic),
            b',"input":',
            encode(self.input)[0],
            b',"outputs":[',
        ]
        for n, out in enumerate(self.outputs):
            if n:
                parts.append(b",")
            value = encode(out.event)[0]
            parts += [b'{"topic":', orjson.dumps(out.topic), b',"event":', value, b"}"]
        parts.append(b"]}")
        return b"".join(parts)

    @classmethod
    def decode(cls, value: bytes) -> ChangelogEntry:
        doc = orjson.loads(value)
        if doc.get("v") != CHANGELOG_VERSION:
            raise ValueError(
                f"changelog entry version {doc.get('v')!r} is not {CHANGELOG_VERSION}; "
                f"this participant cannot replay it"
            )
        return cls(
            topic=doc["topic"],
            input=CloudEvent.model_validate(doc["input"]),
            outputs=tuple(
                Outgoing(o["topic"], CloudEvent.model_validate(o["event"])) for o in doc["outputs"]
            ),
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What one input did: its outputs, whether it was a duplicate, and what to log."""

    outputs: tuple[Outgoing, ...]
    duplicate: bool
    entry: ChangelogEntry | None  # None for a duplicate: nothing new to make durable


@dataclass
class ParticipantCore(Generic[S]):
    """State, dedupe map and handler of one participant; no I/O."""

    handler: Handler[S]
    state: S
    seen: dict[str, tuple[Outgoing, ...]] = field(default_factory=dict)
    mismatches: int = 0

    def apply(self, topic: str, event: CloudEvent) -> Applied:
        """Run the handler for a new input; a known input id returns its recorded outputs."""
        recorded = self.seen.get(event.id)
        if recorded is not None:
            return Applied(recorded, duplicate=True, entry=None)
        state, outputs = self.handler(self.state, event)
        outs = tuple(outputs)
        self.state = state
        self.seen[event.id] = outs
        return Applied(outs, duplicate=False, entry=ChangelogEntry(topic, event, outs))

    def replay(self, entry: ChangelogEntry) -> None:
        """Re-apply a logged input: rebuild the state, remember the recorded outputs."""
        if entry.input.id in self.seen:
            return
        state, outputs = self.handler(self.state, entry.input)
        if _essence(outputs) != _essence(entry.outputs):
            self.mismatches += 1
        self.state = state
        self.seen[entry.input.id] = entry.outputs


def _essence(outputs: Sequence[Outgoing]) -> list[tuple[str, str, str, Any]]:
    """What a deterministic handler must reproduce exactly (not the wall-clock time)."""
    return [(o.topic, o.event.id, o.event.type, o.event.data) for o in outputs]
