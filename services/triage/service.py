"""Wiring of the triage agent: the model is trained here, before the participant starts."""

from __future__ import annotations

from dataclasses import asdict

from sagas.kafka.kafka_settings import KafkaSettings
from services.agent_step import AgentState
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.topics import ServiceTopics
from services.triage.domain import ASSESS, make_handler


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[AgentState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    return ServiceSpec(
        name="triage",
        input_topics=(topics.triage_commands,),
        output_topics=(topics.triage_replies,),
        handler=make_handler(topics.triage_replies),
        initial_state=AgentState(),
        handles=frozenset({ASSESS}),
        views={"/invariants": lambda state, _: asdict(state)},
        late=config.triage.late,
    )
