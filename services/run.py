"""Run one reference service as a participant: `sagas service NAME` calls `run_service`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from sagas.kafka.kafka_settings import KafkaSettings
from sagas.participants.participant import Participant
from services.common import ServiceSpec
from services.config import ServicesConfig

SpecBuilder = Callable[[ServicesConfig, KafkaSettings], ServiceSpec[Any]]


def _builders() -> dict[str, SpecBuilder]:
    from services.bank import service as bank
    from services.claims import service as claims
    from services.inventory import service as inventory
    from services.order import service as order
    from services.payment import service as payment
    from services.shipping import service as shipping
    from services.triage import service as triage

    return {
        "inventory": inventory.spec,
        "payment": payment.spec,
        "shipping": shipping.spec,
        "order": order.spec,
        "bank": bank.spec,
        "claims": claims.spec,
        "triage": triage.spec,
    }


SERVICE_NAMES = ("inventory", "payment", "shipping", "order", "bank", "claims", "triage")


def build_spec(name: str, config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[Any]:
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown service {name!r}; choose one of: {', '.join(SERVICE_NAMES)}")
    return builders[name](config, kafka)


def participant_for(
    name: str,
    config: ServicesConfig,
    kafka: KafkaSettings,
    *,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    create_topics: bool = True,
) -> Participant[Any]:
    """The participant that runs service ``name`` (not started)."""
    from services.catalog import catalog

    spec = build_spec(name, config, kafka)
    return Participant(
        spec.name,
        spec.input_topics,
        spec.handler,
        spec.initial_state,
        kafka=kafka,
        handles=spec.handles,
        output_topics=spec.output_topics,
        catalog=catalog,
        registry=registry,
        answer_delay=spec.late.delay_for,
        http_port=http_port,
        http_host=http_host,
        views=spec.views,
        create_topics=create_topics,
    )


async def run_service(
    name: str,
    config: ServicesConfig,
    kafka: KafkaSettings,
    stop: asyncio.Event,
    **options: Any,
) -> None:
    """Run service ``name`` until ``stop`` is set."""
    await participant_for(name, config, kafka, **options).serve(stop)
