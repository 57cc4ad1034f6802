"""Payment's messages. Amounts are integers in cents."""

from __future__ import annotations

from pydantic import BaseModel, Field

SOURCE = "sagastream/payment"

AUTHORIZE, CAPTURE, REFUND, VOID = (
    "payment.authorize",
    "payment.capture",
    "payment.refund",
    "payment.void",
)
AUTHORIZED, DECLINED = "payment.authorized", "payment.declined"
CAPTURED, CAPTURE_FAILED = "payment.captured", "payment.capture_failed"
REFUNDED, VOIDED, VOID_FAILED = "payment.refunded", "payment.voided", "payment.void_failed"


class Authorize(BaseModel):
    """Hold ``amount`` against the customer's credit limit."""

    customer_id: str = Field(min_length=1)
    amount: int = Field(gt=0)


class Capture(BaseModel):
    """Take the money held by the saga's authorization."""

    authorization_id: str | None = None


class Refund(BaseModel):
    """Give back what the saga captured; a no-op success when nothing was captured."""

    payment_id: str | None = None


class Void(BaseModel):
    """Drop the saga's authorization hold; a no-op success when there is none."""

    authorization_id: str | None = None


class Authorized(BaseModel):
    authorization_id: str
    amount: int


class Declined(BaseModel):
    reason: str
    limit: int | None = None
    in_use: int | None = None
    wanted: int | None = None


class Captured(BaseModel):
    payment_id: str
    authorization_id: str
    amount: int


class Refunded(BaseModel):
    payment_id: str | None = None
    refunded_amount: int = 0


class Voided(BaseModel):
    authorization_id: str | None = None
    voided_amount: int = 0


class Failed(BaseModel):
    reason: str
