"""Typed errors of the event contract.

Every error says what went wrong and what to do about it. Decoding errors
carry where the record came from and a short machine ``reason`` that becomes
the ``x-dlq-reason`` header when the record is dead-lettered.

    EventsError
     ├── DecodeError                   bad data: the record goes to saga.deadletter
     │    ├── NotJSONError             "not-json"
     │    ├── NotACloudEventError      "not-a-cloudevent"
     │    │    └── MissingSagaIdError  "missing-sagaid"
     │    ├── UnknownEventTypeError    "unknown-type"
     │    ├── InvalidPayloadError      "invalid-payload"
     │    └── RecordTooLargeError      "too-large"
     ├── EncodeError                   an event of ours cannot be written as JSON
     ├── CatalogError                  a mistake in how the event catalog is set up
     └── TopicError                    the topics do not match the contract
          ├── TopicPartitionMismatchError
          └── TopicMissingError

``retriable`` says whether trying the same thing again can succeed; none of
these can: bad data stays bad and a misconfigured topic stays misconfigured.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from events.dead_letters import location_headers

CONTRACT_HINT = "see DESIGN.md, 'Wire contract v1'"


def _rebuild(cls: type[EventsError], args: tuple[Any, ...], state: dict[str, Any]) -> EventsError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class EventsError(Exception):
    """Root of every error raised by ``events``."""

    retriable: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments; pickle the built state instead
        # so errors survive a trip through multiprocessing or a task queue.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class DecodeError(EventsError):
    """A record could not be turned into a valid event; it belongs in the dead-letter topic."""

    reason: str = "undecodable"

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(message)

    def __str__(self) -> str:
        where = self.location()
        return f"{self.message} [{where}]" if where else self.message

    def location(self) -> str:
        """``topic=orders partition=3 offset=42``, or "" when the origin is unknown."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("topic", self.topic),
                ("partition", self.partition),
                ("offset", self.offset),
            )
            if value is not None
        ]
        return " ".join(parts)

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """The headers a dead-lettered record carries (wire contract v1)."""
        return location_headers(self.reason, self.topic, self.partition, self.offset)


class NotJSONError(DecodeError):
    """The record value is empty or not UTF-8 JSON."""

    reason = "not-json"

    def __init__(self, detail: str, **where: Any) -> None:
        self.detail = detail
        super().__init__(
            f"record value is not JSON: {detail}. Producers must write each event as UTF-8 "
            f"JSON ({CONTRACT_HINT})",
            **where,
        )


class AttributeProblem(NamedTuple):
    """One CloudEvent attribute that is missing or wrong."""

    attribute: str
    expected: str
    got: str  # a short description of what was found ("missing", "int 3", ...)


class NotACloudEventError(DecodeError):
    """The record is JSON but not a CloudEvent of wire contract v1."""

    reason = "not-a-cloudevent"

    def __init__(self, problems: Sequence[AttributeProblem], **where: Any) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(
            f"'{p.attribute}': expected {p.expected}, got {p.got}" for p in self.problems
        )
        super().__init__(
            f"record is not a CloudEvent of wire contract v1: {listed}. Fix the producer to "
            f"send CloudEvents 1.0 with specversion, id, source, type, sagaid and a JSON "
            f"object as data ({CONTRACT_HINT})",
            **where,
        )

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(p.attribute for p in self.problems)


class MissingSagaIdError(NotACloudEventError):
    """A valid CloudEvent that lacks the ``sagaid`` extension every record must carry."""

    reason = "missing-sagaid"


class UnknownEventTypeError(DecodeError):
    """The event ``type`` is not in a strict catalog."""

    reason = "unknown-type"

    def __init__(self, type: str, known: Iterable[str] = (), **where: Any) -> None:
        self.type = type
        known = sorted(known)
        self.close_matches = tuple(difflib.get_close_matches(type, known, n=3, cutoff=0.6))
        if self.close_matches:
            hint = "did you mean " + ", ".join(repr(t) for t in self.close_matches) + "?"
        elif known:
            hint = f"{len(known)} types are known, none close to it."
        else:
            hint = "the catalog is empty."
        super().__init__(
            f"unknown event type {type!r}: {hint} Register a payload model for it in the "
            f"EventCatalog, or fix the type the producer sends",
            **where,
        )


class FieldProblem(NamedTuple):
    """One pydantic error about the payload, with its path from the event root."""

    loc: tuple[str | int, ...]
    msg: str
    got: str  # the type name of the offending input; values are not echoed (may be private)

    @property
    def path(self) -> str:
        return format_loc(self.loc)


def format_loc(loc: Sequence[str | int]) -> str:
    """``("data", "items", 0, "sku")`` -> ``data.items[0].sku``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


class InvalidPayloadError(DecodeError):
    """The event's ``data`` does not match the payload model registered for its type."""

    reason = "invalid-payload"

    def __init__(self, type: str, problems: Sequence[FieldProblem], **where: Any) -> None:
        self.type = type
        self.problems = tuple(problems)
        listed = "; ".join(f"{p.path}: {p.msg} (got {p.got})" for p in self.problems)
        super().__init__(
            f"invalid data for event type {type!r}: {listed}. Fix the producer to send data "
            f"matching the published schema (`sagas schema export`)",
            **where,
        )

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.problems)


class RecordTooLargeError(DecodeError):
    """The record value is larger than the decoder accepts."""

    reason = "too-large"

    def __init__(self, size: int, limit: int, **where: Any) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"record value is {size} bytes, over the limit of {limit} bytes. Keep events "
            f"small (put large documents in storage and send a reference), or raise max_bytes",
            **where,
        )


class InvalidSagaIdError(DecodeError):
    """A record would start a saga whose id breaks the grammar of `events.saga_ids`."""

    reason = "invalid-saga-id"

    def __init__(self, problem: str, event_type: str, **where: Any) -> None:
        self.event_type = event_type
        super().__init__(
            f"{event_type!r} would start a saga: {problem}. Fix the producer's sagaid "
            f"(and record key)",
            **where,
        )


class EncodeError(EventsError):
    """An event of ours cannot be serialised; a bug in the code that built it."""

    def __init__(self, event_type: str, detail: str) -> None:
        self.event_type = event_type
        super().__init__(
            f"cannot encode event {event_type!r} as JSON: {detail}. Put only JSON values "
            f"(str, 64-bit int, float, bool, None, list, dict with str keys, datetime, UUID) "
            f"in data"
        )


class CatalogError(EventsError):
    """The event catalog was set up wrongly (a programming mistake, not bad data)."""


class TopicError(EventsError):
    """The Kafka topics do not match what the contract requires."""


class TopicPartitionMismatchError(TopicError):
    """Topics read together have different partition counts, so one saga's records would split."""

    def __init__(self, partitions: Mapping[str, int], expected: int | None = None) -> None:
        self.partitions = dict(partitions)
        self.expected = expected
        if expected is None:
            counts = sorted(self.partitions.values())
            expected = max(set(counts), key=counts.count) if counts else 0
        listed = ", ".join(f"{t}={n}" for t, n in sorted(self.partitions.items()))
        wrong = sorted(t for t, n in self.partitions.items() if n != expected)
        super().__init__(
            f"topics read by the coordinator must all have the same partition count, got "
            f"{listed} (expected {expected}; differing: {', '.join(wrong)}). Records of a saga "
            f"are keyed by saga id and must land in the same partition on every topic: "
            f"recreate the differing topics with {expected} partitions before starting"
        )


class TopicMissingError(TopicError):
    """Topics the contract needs do not exist on the cluster."""

    def __init__(
        self, topics: Iterable[str], bootstrap: str | None = None, principal: str | None = None
    ) -> None:
        self.topics = tuple(sorted(topics))
        on = f" on {bootstrap}" if bootstrap else ""
        # Kafka lists only the topics a principal may describe: absent may mean refused.
        hidden = (
            f" (or {principal} has no ACL to use them: Kafka hides such topics; `sagas topics "
            f"acl` lists the ACLs each principal needs)"
            if principal
            else ""
        )
        super().__init__(
            f"missing topics{on}: {', '.join(self.topics)}{hidden}. Create them with the same "
            f"partition count as the other saga topics, or let the admin create them at start-up"
        )
