"""Wiring of the inventory service: which topics, which types, which views."""

from __future__ import annotations

from sagas.kafka.kafka_settings import KafkaSettings
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.inventory import contract as c
from services.inventory.domain import InventoryState, invariants, make_handler
from services.order.contract import ORDER_PLACED
from services.shipping.contract import SCHEDULED
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[InventoryState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    inputs, handles = [topics.inventory_commands], {c.RESERVE, c.RELEASE, c.COMMIT}
    if config.mode.reacts:
        inputs += [topics.orders, topics.shipping_events]
        handles |= {ORDER_PLACED, SCHEDULED}
    return ServiceSpec(
        name="inventory",
        input_topics=tuple(inputs),
        output_topics=(topics.inventory_replies, topics.inventory_events),
        handler=make_handler(topics),
        initial_state=InventoryState.with_stock(config.inventory.initial_stock),
        handles=frozenset(handles),
        views={"/invariants": lambda state, _: invariants(state)},
        late=config.inventory.late,
    )
