"""The bank transfer example: `transfer.requested` on `transfers`, bank commands and replies."""

from __future__ import annotations

from pydantic import BaseModel, Field

SOURCE = "sagastream/bank"

TRANSFER_REQUESTED = "transfer.requested"
FRAUD_CHECK, DEBIT, REVERSE_DEBIT, CREDIT = (
    "bank.fraud_check",
    "bank.debit",
    "bank.reverse_debit",
    "bank.credit",
)
FRAUD_CLEARED, FRAUD_SUSPECTED = "bank.fraud_cleared", "bank.fraud_suspected"
#: sanctions/compliance screening of both parties
SCREEN, SCREENED, SCREENING_HIT = "bank.screen", "bank.screened", "bank.screening_hit"
#: a person's answer to a transfer above the approval threshold (signals on `approvals`)
TRANSFER_APPROVED, TRANSFER_DECLINED = "transfer.approved", "transfer.declined"
DEBITED, DEBIT_REJECTED = "bank.debited", "bank.debit_rejected"
DEBIT_REVERSED, REVERSE_FAILED = "bank.debit_reversed", "bank.reverse_failed"
CREDITED, CREDIT_REJECTED = "bank.credited", "bank.credit_rejected"


class TransferRequested(BaseModel):
    """Move ``amount`` cents from one account to another."""

    transfer_id: str = Field(min_length=1)
    from_account: str = Field(min_length=1)
    to_account: str = Field(min_length=1)
    amount: int = Field(gt=0)


class Debited(BaseModel):
    debit_id: str
    account: str
    amount: int


class Credited(BaseModel):
    credit_id: str
    account: str
    amount: int


class DebitReversed(BaseModel):
    account: str | None = None
    reversed_amount: int = 0


class Rejected(BaseModel):
    reason: str


class Cleared(BaseModel):
    pass


class Decided(BaseModel):
    """A person's answer to a large transfer."""

    approved_by: str = ""
    reason: str = ""
