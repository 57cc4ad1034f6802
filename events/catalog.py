"""The catalog of event types: which pydantic model each event's ``data`` must match.

A catalog maps CloudEvent ``type`` strings to payload models. It validates a
decoded event's ``data`` and publishes the contract as JSON Schema (one schema
per type describing the whole CloudEvent), so a service written in any
language can check the records it produces.

``default_catalog`` starts empty; the modules that own event types register
into it. It is lenient: an event of an unregistered type passes with its data
unchecked, because participants in other languages may send types no Python
module knows. Build ``EventCatalog(strict=True)`` to reject unknown types.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError

from events.envelope import JSON_CONTENT_TYPE, SPECVERSION, CloudEvent
from events.errors import (
    CatalogError,
    FieldProblem,
    InvalidPayloadError,
    UnknownEventTypeError,
)

__all__ = ["EventCatalog", "UncheckedPayload", "cloudevent_schema", "default_catalog"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

M = TypeVar("M", bound=type[BaseModel])


class UncheckedPayload(BaseModel):
    """What a lenient catalog returns for a type it does not know: the data, unchecked."""

    model_config = ConfigDict(frozen=True)

    type: str
    data: dict[str, Any]


class EventCatalog:
    """Event ``type`` -> payload model, with validation and JSON Schema export."""

    def __init__(self, *, strict: bool = False, name: str = "catalog") -> None:
        self.strict = strict
        self.name = name
        self._models: dict[str, type[BaseModel]] = {}

    def __repr__(self) -> str:
        mode = "strict" if self.strict else "lenient"
        return f"<EventCatalog {self.name!r} {mode}, {len(self._models)} types>"

    def __contains__(self, type: object) -> bool:
        return type in self._models

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[str]:
        return iter(self.types())

    @overload
    def register(self, type: str, model: M) -> M: ...

    @overload
    def register(self, type: str, model: None = None) -> Callable[[M], M]: ...

    def register(self, type: str, model: M | None = None) -> M | Callable[[M], M]:
        """Register ``model`` as the payload of ``type``; without ``model``, a class decorator.

        Registering the same model again is a no-op; a different model for a
        registered type is a ``CatalogError`` (two modules disagree on the contract).
        """
        if model is None:

            def decorator(cls: M) -> M:
                return self.register(type, cls)

            return decorator
        if not isinstance(type, str) or not type:
            raise CatalogError(f"event type must be a non-empty string, got {type!r}")
        if not (isinstance(model, builtins.type) and issubclass(model, BaseModel)):
            raise CatalogError(
                f"payload of {type!r} must be a pydantic BaseModel subclass, got {model!r}"
            )
        existing = self._models.get(type)
        if existing is not None and existing is not model:
            raise CatalogError(
                f"event type {type!r} is already registered in {self.name!r} with "
                f"{_qualname(existing)}; refusing to replace it with {_qualname(model)}. "
                f"Give one of them another type, or register the shared model once"
            )
        self._models[type] = model
        return model

    def model_for(self, type: str) -> type[BaseModel]:
        """The payload model of ``type``; ``UnknownEventTypeError`` if none is registered."""
        try:
            return self._models[type]
        except KeyError:
            raise UnknownEventTypeError(type, self._models) from None

    def types(self) -> tuple[str, ...]:
        """Registered types, sorted."""
        return tuple(sorted(self._models))

    def validate(
        self,
        event: CloudEvent,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> BaseModel:
        """The event's ``data`` as its payload model.

        Raises ``UnknownEventTypeError`` (strict catalog, unregistered type) or
        ``InvalidPayloadError`` naming each bad field as ``data.<path>``. In a
        lenient catalog an unregistered type yields an ``UncheckedPayload``.
        """
        where: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
        model = self._models.get(event.type)
        if model is None:
            if self.strict:
                raise UnknownEventTypeError(event.type, self._models, **where)
            return UncheckedPayload(type=event.type, data=event.data)
        try:
            return model.model_validate(event.data)
        except ValidationError as exc:
            problems = [
                FieldProblem(("data", *e["loc"]), e["msg"], _got(e))
                for e in exc.errors(include_url=False)
            ]
            raise InvalidPayloadError(event.type, problems, **where) from None

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Per type, a JSON Schema (draft 2020-12) of the whole CloudEvent with its data."""
        return {t: cloudevent_schema(t, self._models[t]) for t in self.types()}


def cloudevent_schema(event_type: str, payload: type[BaseModel] | None = None) -> dict[str, Any]:
    """JSON Schema of a structured-mode CloudEvent of ``event_type`` (wire contract v1).

    ``data`` is constrained to ``payload``'s schema (any object when None).
    The payload's ``$defs`` are hoisted to the root so its ``$ref``s resolve.
    """
    defs: dict[str, Any] = {}
    data: dict[str, Any] = {"type": "object"}
    if payload is not None:
        data = payload.model_json_schema(ref_template="#/$defs/{model}", mode="validation")
        defs = data.pop("$defs", {})
    text = {"type": "string", "minLength": 1}
    optional_text = {"type": ["string", "null"]}
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:sagastream:event:{event_type}",
        "title": f"{event_type} (CloudEvent, wire contract v1)",
        "description": (
            f"A structured-mode CloudEvents {SPECVERSION} record value of type "
            f"{event_type!r}; the Kafka record key is the sagaid."
        ),
        "type": "object",
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": text,
            "source": text,
            "type": {"const": event_type},
            "time": {"type": ["string", "null"], "format": "date-time"},
            "datacontenttype": {"type": "string", "default": JSON_CONTENT_TYPE},
            "sagaid": text,
            "causationid": optional_text,
            "traceparent": optional_text,
            "data": data,
        },
        "required": ["specversion", "id", "source", "type", "sagaid"],
        "additionalProperties": True,
    }
    if data.get("required"):
        # An absent data is read as {}, which is only valid if nothing is required.
        schema["required"].append("data")
    if defs:
        schema["$defs"] = defs
    return schema


def _qualname(model: type) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _got(error: Any) -> str:
    if error["type"] == "missing":
        return "nothing"
    value = error.get("input")
    return "null" if value is None else type(value).__name__


default_catalog = EventCatalog(strict=False, name="default")
