"""The insurance claim: `claim.submitted` on `claims`, the insurer's and the triage agent's
commands and replies, and the reviewer's signals on `approvals`."""

from __future__ import annotations

from pydantic import BaseModel, Field

CLAIM_SUBMITTED = "claim.submitted"
CLAIM_APPROVED, CLAIM_REJECTED = "claim.approved", "claim.rejected"


class ClaimSubmitted(BaseModel):
    """A provider's bill for a member's treatment: ``amount`` cents."""

    claim_id: str = Field(min_length=1)
    member_id: str = Field(min_length=1)
    provider_id: str = Field(min_length=1)
    amount: int = Field(gt=0)
    procedure: str = ""
    description: str = ""


class Refused(BaseModel):
    reason: str


class Nothing(BaseModel):
    pass


class Reserved(BaseModel):
    reserved_amount: int


class Released(BaseModel):
    released_amount: int = 0


class Paid(BaseModel):
    paid_amount: int
    approved_by: str


class Assessed(BaseModel):
    triage_decision: str
    triage_confidence: float = Field(ge=0, le=1)
    triage_model: str


class Approved(BaseModel):
    """A reviewer's approval (signal): ``approved_by`` is what the payment checks."""

    approved_by: str = Field(min_length=1)
    note: str = ""


class Rejected(BaseModel):
    reason: str = ""
    rejected_by: str = ""
