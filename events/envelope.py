"""The CloudEvents 1.0 envelope of wire contract v1.

Every record that crosses Kafka carries one of these (see DESIGN.md, "Wire
contract v1"). The model is frozen: an event is a fact, and code that wants a
different one builds a new one.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SPECVERSION: Final = "1.0"
JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"

#: The attributes a structured-mode event must carry (CloudEvents core + ours).
REQUIRED_ATTRIBUTES: tuple[str, ...] = ("specversion", "id", "source", "type", "sagaid")


class CloudEvent(BaseModel):
    """One message on the wire: a command, a reply, or a lifecycle event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = SPECVERSION
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime | None = None
    datacontenttype: str = JSON_CONTENT_TYPE
    sagaid: str = Field(min_length=1)
    causationid: str | None = None
    traceparent: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def reply(
        self,
        type: str,
        source: str,
        data: dict[str, Any] | None = None,
        *,
        time: datetime | None = None,
    ) -> CloudEvent:
        """Build the answer to this command: same saga, causation set, trace carried."""
        return CloudEvent(
            id=derived_id(self.id, "reply", type),
            source=source,
            type=type,
            time=time or datetime.now(UTC),
            sagaid=self.sagaid,
            causationid=self.id,
            traceparent=self.traceparent,
            data=data or {},
        )


def new_event(
    type: str,
    *,
    source: str,
    sagaid: str,
    data: dict[str, Any] | None = None,
    causationid: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    """A new event with a random id unless one is given (commands pass a derived one)."""
    return CloudEvent(
        id=id or str(uuid.uuid4()),
        source=source,
        type=type,
        time=time or datetime.now(UTC),
        sagaid=sagaid,
        causationid=causationid,
        traceparent=traceparent,
        data=data or {},
    )


def derived_id(*parts: object) -> str:
    """A deterministic id from its parts, so a message re-sent after a crash keeps its id."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    # str(uuid.UUID(h[:32])), without building the UUID (this runs several times per record)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
