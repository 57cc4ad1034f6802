"""Wiring of the shipping service."""

from __future__ import annotations

from sagas.kafka.kafka_settings import KafkaSettings
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.payment.contract import CAPTURED as PAYMENT_CAPTURED
from services.shipping import contract as c
from services.shipping.domain import ShippingState, invariants, make_handler
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[ShippingState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    inputs, handles = [topics.shipping_commands], {c.SCHEDULE, c.CANCEL}
    if config.mode.reacts:
        inputs.append(topics.payment_events)
        handles.add(PAYMENT_CAPTURED)
    s = config.shipping
    carriers = [(carrier.name, carrier.daily_capacity) for carrier in s.carriers]
    return ServiceSpec(
        name="shipping",
        input_topics=tuple(inputs),
        output_topics=(topics.shipping_replies, topics.shipping_events),
        handler=make_handler(topics),
        initial_state=ShippingState.with_carriers(carriers, s.failure_rate),
        handles=frozenset(handles),
        views={"/invariants": lambda state, _: invariants(state)},
        late=s.late,
    )
