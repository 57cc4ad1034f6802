"""`bench.client_fetch_cpu`'s aiokafka side on the suite's broker: its reader reads exactly
the records its feeder writes (so the CPU it reports is per record read), and says so in
one line when records do not come.

Not a performance test; the librdkafka side needs confluent-kafka, which the project
does not install (the experiment's figures are in the README, "Performance").
"""

from __future__ import annotations

import asyncio

import pytest

from bench.client_fetch_cpu import Feed, ReadFailed, one_round, read_aiokafka, work
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings


async def test_the_reader_reads_what_the_feeder_writes(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 2})
    plan = Feed(kafka.require_bootstrap(), 400.0, 1.0, 2, prefix=unique_topic + ".")
    await ensure_topics(kafka, list(plan.topics), partitions=2)
    # raises unless exactly the 400 records written were read
    assert await one_round(kafka, plan, read_aiokafka, 10.0) > 0


async def test_a_reader_whose_records_do_not_come_fails_in_one_line(
    kafka_settings: KafkaSettings, unique_topic: str
) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 2})
    plan = Feed(kafka.require_bootstrap(), 10.0, 0.5, 2, prefix=unique_topic + ".", grace=0.5)
    await ensure_topics(kafka, list(plan.topics), partitions=2)
    with pytest.raises(ReadFailed, match=r"read 0 of the 5 records the feeder writes to"):
        await read_aiokafka(kafka, plan, asyncio.Event(), 0.0)  # no feeder runs


def test_the_stand_in_work_takes_the_cpu_it_is_asked_for() -> None:
    assert work(0, 100.0) == 0.0
    spent = work(50, 100.0)  # 5 ms of this thread's CPU
    assert 0.005 <= spent < 0.05
