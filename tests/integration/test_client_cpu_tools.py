"""`bench.client_fetch_cpu`'s aiokafka side on the suite's broker: its reader reads every
record its feeder writes, and no more (so the CPU it reports is per record read).

Not a performance test; the librdkafka side needs confluent-kafka, which the project
does not install (the experiment's figures are in the README, "Performance").
"""

from __future__ import annotations

from bench.client_fetch_cpu import TOPICS, Feed, one_round, read_aiokafka, work
from sagas.kafka.admin import ensure_topics
from sagas.kafka.kafka_settings import KafkaSettings


async def test_the_reader_reads_what_the_feeder_writes(kafka_settings: KafkaSettings) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 2})
    await ensure_topics(kafka, list(TOPICS), partitions=2)
    plan = Feed(kafka.require_bootstrap(), rate=400.0, seconds=1.0, partitions=2)
    # returns once all 400 are read (a record lost would time out: the error says so)
    us_per_record = await one_round(kafka, plan, read_aiokafka, 10.0)
    assert us_per_record > 0, us_per_record


def test_the_stand_in_work_takes_the_cpu_it_is_asked_for() -> None:
    assert work(0, 100.0) == 0.0
    spent = work(50, 100.0)  # 5 ms of this thread's CPU
    assert 0.005 <= spent < 0.05
