"""Wiring of the order service: `order.placed` plus the saga lifecycle, in every mode."""

from __future__ import annotations

from events.topics import Topics
from sagas.kafka.kafka_settings import KafkaSettings
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.order.contract import ORDER_PLACED
from services.order.domain import TERMINAL, OrdersState, handle, invariants, order_status
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[OrdersState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    return ServiceSpec(
        name="order",
        input_topics=(topics.orders, Topics.from_settings(kafka).lifecycle),
        output_topics=(),
        handler=handle,
        initial_state=OrdersState.for_sagas(config.order.sagas),
        handles=frozenset({ORDER_PLACED, *TERMINAL}),
        views={
            "/orders/{order_id}": lambda state, path: order_status(state, path["order_id"]),
            "/orders": lambda state, _: invariants(state)["orders"],
            "/invariants": lambda state, _: invariants(state),
        },
        late=config.order.late,
    )
