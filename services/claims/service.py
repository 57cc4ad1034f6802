"""Wiring of the insurer used by the claim saga."""

from __future__ import annotations

from sagas.kafka.kafka_settings import KafkaSettings
from services.claims.domain import HANDLES, ClaimsState, invariants, make_handler
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[ClaimsState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    c = config.claims
    members = {name: (p.allowance, p.active) for name, p in c.members.items()}
    return ServiceSpec(
        name="claims",
        input_topics=(topics.claims_commands,),
        output_topics=(topics.claims_replies,),
        handler=make_handler(topics.claims_replies),
        initial_state=ClaimsState.open(
            members, auto_confidence=c.auto_confidence, review_above=c.review_above
        ),
        handles=HANDLES,
        views={"/invariants": lambda state, _: invariants(state)},
        late=c.late,
    )
