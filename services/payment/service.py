"""Wiring of the payment service."""

from __future__ import annotations

from sagas.kafka.kafka_settings import KafkaSettings
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.inventory.contract import RESERVED as INVENTORY_RESERVED
from services.payment import contract as c
from services.payment.domain import PaymentState, invariants, make_handler
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[PaymentState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    inputs, handles = [topics.payment_commands], {c.AUTHORIZE, c.CAPTURE, c.REFUND, c.VOID}
    if config.mode.reacts:
        inputs.append(topics.inventory_events)
        handles.add(INVENTORY_RESERVED)
    p = config.payment
    return ServiceSpec(
        name="payment",
        input_topics=tuple(inputs),
        output_topics=(topics.payment_replies, topics.payment_events),
        handler=make_handler(topics),
        initial_state=PaymentState.with_limits(p.credit_limits, p.default_credit_limit),
        handles=frozenset(handles),
        views={"/invariants": lambda state, _: invariants(state)},
        late=p.late,
    )
