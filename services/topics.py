"""Names of the business topics the reference services use (wire contract v1).

The coordinator takes business topic names verbatim from the saga
definitions, so these are plain names. ``prefix`` lets tests and parallel
deployments on one cluster keep their traffic apart; the shipped definitions
are loaded with the same prefix by `services.definitions.load`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ServiceTopics:
    orders: str = "orders"
    inventory_commands: str = "inventory.commands"
    inventory_replies: str = "inventory.replies"
    inventory_events: str = "inventory.events"
    payment_commands: str = "payment.commands"
    payment_replies: str = "payment.replies"
    payment_events: str = "payment.events"
    shipping_commands: str = "shipping.commands"
    shipping_replies: str = "shipping.replies"
    shipping_events: str = "shipping.events"
    transfers: str = "transfers"
    bank_commands: str = "bank.commands"
    bank_replies: str = "bank.replies"
    claims: str = "claims"
    claims_commands: str = "claims.commands"
    claims_replies: str = "claims.replies"
    triage_commands: str = "triage.commands"
    triage_replies: str = "triage.replies"
    #: signals of the people who review claims and transfers (`awaits:` steps)
    approvals: str = "approvals"

    @classmethod
    def with_prefix(cls, prefix: str) -> ServiceTopics:
        base = cls()
        return cls(**{f.name: prefix + getattr(base, f.name) for f in fields(cls)})

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


DEFAULT_TOPICS = ServiceTopics()
