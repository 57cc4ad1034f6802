"""Wiring of the bank used by the transfer saga."""

from __future__ import annotations

from sagas.kafka.kafka_settings import KafkaSettings
from services.bank import contract as c
from services.bank.domain import BankState, invariants, make_handler
from services.common import ServiceSpec
from services.config import ServicesConfig
from services.topics import ServiceTopics


def spec(config: ServicesConfig, kafka: KafkaSettings) -> ServiceSpec[BankState]:
    topics = ServiceTopics.with_prefix(config.topic_prefix)
    b = config.bank
    accounts = {name: (a.balance, a.closed) for name, a in b.accounts.items()}
    return ServiceSpec(
        name="bank",
        input_topics=(topics.bank_commands,),
        output_topics=(topics.bank_replies,),
        handler=make_handler(topics),
        initial_state=BankState.open(accounts, b.fraud_limit, frozenset(b.sanctioned)),
        handles=frozenset({c.FRAUD_CHECK, c.SCREEN, c.DEBIT, c.REVERSE_DEBIT, c.CREDIT}),
        views={"/invariants": lambda state, _: invariants(state)},
        late=b.late,
    )
