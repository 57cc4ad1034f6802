"""Configuration of the reference services, including their failure injection.

One model for all five, so the demo writes one file (JSON or YAML) and every
service reads its own section: ``sagas service inventory --config demo.yaml``.
Environment variables override nothing the file sets; they fill the rest
(``SERVICES_SHIPPING__FAILURE_RATE=0.1``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import Mode
from services.late_answers import LateAnswers


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    late: LateAnswers = Field(
        default_factory=LateAnswers,
        description="Answer this fraction of inputs this many seconds late.",
    )


def _default_stock() -> dict[str, int]:
    return {**{f"SKU-{n:03d}": 1000 for n in range(1, 9)}, "SKU-OUT": 0}


class InventoryConfig(_Section):
    initial_stock: dict[str, int] = Field(
        default_factory=_default_stock, description="Units on hand per SKU at the start."
    )


class PaymentConfig(_Section):
    credit_limits: dict[str, int] = Field(
        default_factory=lambda: {"cust-broke": 500},
        description="Credit limit in cents per customer.",
    )
    default_credit_limit: int | None = Field(
        default=10_000_000,
        description="Limit of customers not listed; None declines unknown customers.",
    )


class Carrier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    daily_capacity: int = Field(ge=0)


class ShippingConfig(_Section):
    carriers: list[Carrier] = Field(
        default_factory=lambda: [Carrier(name="parcelco", daily_capacity=100_000)]
    )
    failure_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of sagas whose shipment the carrier refuses (by saga id).",
    )


class OrderConfig(_Section):
    sagas: list[str] = Field(
        default_factory=lambda: ["order", "order-choreo"],
        description="Names of the sagas whose lifecycle decides an order's status.",
    )


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    balance: int = Field(ge=0)
    closed: bool = False


class BankConfig(_Section):
    accounts: dict[str, Account] = Field(
        default_factory=lambda: {
            "acc-alice": Account(balance=1_000_000),
            "acc-bob": Account(balance=500_000),
            "acc-closed": Account(balance=0, closed=True),
            "acc-sanctioned": Account(balance=0),
        }
    )
    sanctioned: list[str] = Field(
        default_factory=lambda: ["acc-sanctioned"],
        description="Accounts on the sanctions list: screening refuses transfers with them.",
    )
    fraud_limit: int = Field(
        default=2_000_000, gt=0, description="Transfers above this many cents are suspected."
    )


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowance: int = Field(ge=0, description="Benefit in cents per policy year.")
    active: bool = True


class ClaimsConfig(_Section):
    members: dict[str, Policy] = Field(
        default_factory=lambda: {
            "mem-ann": Policy(allowance=500_000),
            "mem-ben": Policy(allowance=150_000),
            "mem-lapsed": Policy(allowance=500_000, active=False),
        },
        description="Members by id: yearly allowance in cents, and whether the policy is active.",
    )
    auto_confidence: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="The agent alone may approve with at least this confidence (as the saga's "
        "`when:` routes).",
    )
    review_above: int = Field(
        default=100_000, ge=0, description="Claims above this many cents need a person."
    )


class TriageConfig(_Section):
    pass


class ServicesConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVICES_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mode: Mode = Mode.ORCHESTRATED
    topic_prefix: str = Field(default="", description="Prefix of the business topics.")
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "Serve /metrics, /health and /invariants on this port (unset: not served); "
            "`sagas bridge` reads it too."
        ),
    )
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    payment: PaymentConfig = Field(default_factory=PaymentConfig)
    shipping: ShippingConfig = Field(default_factory=ShippingConfig)
    order: OrderConfig = Field(default_factory=OrderConfig)
    bank: BankConfig = Field(default_factory=BankConfig)
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    triage: TriageConfig = Field(default_factory=TriageConfig)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> ServicesConfig:
        """The settings from ``path`` (JSON or YAML) and the environment; errors name the file."""
        data: dict[str, Any] = {}
        if path is not None:
            file = Path(path)
            try:
                text = file.read_text()
                raw = orjson.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
            except (OSError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
                raise ValueError(f"cannot read services config {file}: {exc}") from None
            if raw is not None and not isinstance(raw, dict):
                raise ValueError(f"{file}: expected a mapping, got {type(raw).__name__}")
            data = raw or {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except ValidationError as exc:
            where = f" in {path}" if path is not None else ""
            raise ValueError(f"invalid services config{where}:\n{exc}") from None
