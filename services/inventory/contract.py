"""Inventory's messages: commands it takes, replies and events it publishes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.order.contract import OrderLine

SOURCE = "sagastream/inventory"

RESERVE, RELEASE, COMMIT = "inventory.reserve", "inventory.release", "inventory.commit"
RESERVED, REJECTED = "inventory.reserved", "inventory.rejected"
RELEASED, RELEASE_FAILED = "inventory.released", "inventory.release_failed"
COMMITTED, COMMIT_FAILED = "inventory.committed", "inventory.commit_failed"


class Reserve(BaseModel):
    """Reserve every line of an order, or none of them."""

    order_id: str | None = None
    lines: list[OrderLine] = Field(min_length=1)


class Release(BaseModel):
    """Give back what the saga reserved; a no-op success when it reserved nothing."""

    reservation_id: str | None = None


class Commit(BaseModel):
    """Move what the saga reserved to shipped."""

    reservation_id: str | None = None


class Reserved(BaseModel):
    reservation_id: str


class Rejected(BaseModel):
    reason: str
    sku: str | None = None
    wanted: int | None = None
    available: int | None = None


class Released(BaseModel):
    reservation_id: str | None = None
    released: list[OrderLine] = []


class Failed(BaseModel):
    reason: str


class Committed(BaseModel):
    reservation_id: str
    shipped: list[OrderLine] = []
