"""Shipping's messages."""

from __future__ import annotations

from pydantic import BaseModel

SOURCE = "sagastream/shipping"

SCHEDULE, CANCEL = "shipping.schedule", "shipping.cancel"
SCHEDULED, FAILED, CANCELLED = "shipping.scheduled", "shipping.failed", "shipping.cancelled"


class Schedule(BaseModel):
    """Book a pickup with a carrier that has capacity left on the command's day."""

    order_id: str | None = None


class Cancel(BaseModel):
    shipment_id: str | None = None


class Scheduled(BaseModel):
    shipment_id: str
    carrier: str
    day: str


class Failed(BaseModel):
    reason: str
    carrier: str | None = None


class Cancelled(BaseModel):
    shipment_id: str | None = None
