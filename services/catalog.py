"""Payload models of every event type the reference services take or publish.

Importing this module registers them in ``events.catalog.default_catalog``,
so `sagas schema export` publishes them, and builds ``catalog``, the
services' own (lenient) catalog that their participants validate input with.
"""

from __future__ import annotations

from pydantic import BaseModel

from events.catalog import EventCatalog, default_catalog
from services.bank import contract as bank
from services.claims import contract as claim
from services.claims import domain as claims
from services.inventory import contract as inventory
from services.order import contract as order
from services.payment import contract as payment
from services.shipping import contract as shipping
from services.triage import domain as triage


class NoData(BaseModel):
    """The command needs nothing but its saga id."""


PAYLOADS: dict[str, type[BaseModel]] = {
    order.ORDER_PLACED: order.OrderPlaced,
    inventory.RESERVE: inventory.Reserve,
    inventory.RELEASE: inventory.Release,
    inventory.COMMIT: inventory.Commit,
    inventory.RESERVED: inventory.Reserved,
    inventory.REJECTED: inventory.Rejected,
    inventory.RELEASED: inventory.Released,
    inventory.RELEASE_FAILED: inventory.Failed,
    inventory.COMMITTED: inventory.Committed,
    inventory.COMMIT_FAILED: inventory.Failed,
    payment.AUTHORIZE: payment.Authorize,
    payment.CAPTURE: payment.Capture,
    payment.REFUND: payment.Refund,
    payment.VOID: payment.Void,
    payment.AUTHORIZED: payment.Authorized,
    payment.DECLINED: payment.Declined,
    payment.CAPTURED: payment.Captured,
    payment.CAPTURE_FAILED: payment.Failed,
    payment.REFUNDED: payment.Refunded,
    payment.VOIDED: payment.Voided,
    payment.VOID_FAILED: payment.Failed,
    shipping.SCHEDULE: shipping.Schedule,
    shipping.CANCEL: shipping.Cancel,
    shipping.SCHEDULED: shipping.Scheduled,
    shipping.FAILED: shipping.Failed,
    shipping.CANCELLED: shipping.Cancelled,
    bank.TRANSFER_REQUESTED: bank.TransferRequested,
    bank.FRAUD_CHECK: bank.TransferRequested,
    bank.DEBIT: bank.TransferRequested,
    bank.CREDIT: bank.TransferRequested,
    bank.REVERSE_DEBIT: NoData,
    bank.FRAUD_CLEARED: bank.Cleared,
    bank.SCREEN: bank.TransferRequested,
    bank.SCREENED: bank.Cleared,
    bank.SCREENING_HIT: bank.Rejected,
    bank.TRANSFER_APPROVED: bank.Decided,
    bank.TRANSFER_DECLINED: bank.Decided,
    bank.FRAUD_SUSPECTED: bank.Rejected,
    bank.DEBITED: bank.Debited,
    bank.DEBIT_REJECTED: bank.Rejected,
    bank.DEBIT_REVERSED: bank.DebitReversed,
    bank.REVERSE_FAILED: bank.Rejected,
    bank.CREDITED: bank.Credited,
    bank.CREDIT_REJECTED: bank.Rejected,
    claim.CLAIM_SUBMITTED: claim.ClaimSubmitted,
    claims.CHECK: claim.ClaimSubmitted,
    claims.RESERVE: claim.ClaimSubmitted,
    claims.RELEASE: NoData,
    claims.PAY: claim.ClaimSubmitted,
    claims.NOTIFY: claim.ClaimSubmitted,
    claims.ELIGIBLE: claim.Nothing,
    claims.INELIGIBLE: claim.Refused,
    claims.RESERVED: claim.Reserved,
    claims.INSUFFICIENT: claim.Refused,
    claims.RELEASED: claim.Released,
    claims.RELEASE_FAILED: claim.Refused,
    claims.PAID: claim.Paid,
    claims.PAYMENT_REFUSED: claim.Refused,
    claims.NOTIFIED: claim.Nothing,
    triage.ASSESS: claim.ClaimSubmitted,
    triage.ASSESSED: claim.Assessed,
    claim.CLAIM_APPROVED: claim.Approved,
    claim.CLAIM_REJECTED: claim.Rejected,
}

catalog = EventCatalog(strict=False, name="services")
for _type, _model in PAYLOADS.items():
    catalog.register(_type, _model)
    default_catalog.register(_type, _model)
