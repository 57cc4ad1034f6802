"""Fast participants for the bench saga: all four steps in one process, no state.

    python -m bench.participant --prefix run-ab12cd34. --http-port 8123

It answers each command as soon as it reads it: ``bench.sN.do`` with
``bench.sN.done`` (or ``bench.s3.refused`` when the saga's data says
``"fail": true``), ``bench.sN.undo`` with ``bench.sN.undone``. It only reads
the few attributes it needs and writes the reply with orjson, so it costs the
system as little as a participant can; what it measures is the coordinator.

It takes all partitions of its input topics itself (no consumer group), so a
SIGSTOP/SIGCONT (the benchmark's "participant that does not answer") needs no
rebalance. ``GET /health`` says ``{"ready": true}`` once it consumes, with how
many commands it answered and how many of them it had seen before (ids the
coordinator re-sent, e.g. after a crash).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.workload import FAIL_STEP, SOURCE, STEPS, command_topic, reply_topic
from events.codec import CONTENT_TYPE_HEADER
from sagas.kafka.admin import partition_counts
from sagas.kafka.guarantee import guarantee_from_env, isolation_level
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.producer_batches import batching_producer

HEADERS = [CONTENT_TYPE_HEADER]


def answer(command: dict[str, Any]) -> tuple[int, bytes] | None:
    """(step number, reply value) for a bench command; None for anything else."""
    parts = str(command.get("type", "")).split(".")
    if len(parts) != 3 or parts[0] != "bench" or not parts[1][1:].isdigit():
        return None
    step, action = int(parts[1][1:]), parts[2]
    if action == "do":
        data = command.get("data") or {}
        outcome = "refused" if step == FAIL_STEP and data.get("fail") else "done"
    elif action == "undo":
        outcome = "undone"
    else:
        return None
    reply = {
        "specversion": "1.0",
        "id": f"{command['id']}/r",
        "source": SOURCE,
        "type": f"bench.{parts[1]}.{outcome}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "sagaid": command["sagaid"],
        "causationid": command["id"],
        "data": {},
    }
    return step, orjson.dumps(reply)


class BenchParticipant:
    def __init__(self, kafka: KafkaSettings, prefix: str) -> None:
        self.kafka = kafka
        self.prefix = prefix
        self.inputs = [command_topic(prefix, n) for n in range(1, STEPS + 1)]
        self.ready = False
        self.answered = 0
        self.repeats = 0
        self._seen: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        counts = await partition_counts(self.kafka, self.inputs)
        consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1048576,
            # exactly_once: answer only commands of committed coordinator transactions
            isolation_level=isolation_level(guarantee_from_env()),
            **self.kafka.consumer_kwargs(),
        )  # fmt: skip
        producer = batching_producer(self.kafka)
        await consumer.start()
        await producer.start()
        consumer.assign([TopicPartition(t, p) for t in self.inputs for p in range(counts[t])])
        self.ready = True
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
                futures = []
                for records in batches.values():
                    for record in records:
                        futures.append(await self._answer(producer, record))
                if futures:
                    await asyncio.gather(*(f for f in futures if f is not None))
        finally:
            await consumer.stop()
            await producer.stop()

    async def _answer(self, producer: AIOKafkaProducer, record: Any) -> Any:
        try:
            command = orjson.loads(record.value)
            answered = answer(command)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if answered is None:
            return None
        step, value = answered
        key = hash(command["id"])
        if key in self._seen:
            self.repeats += 1
        self._seen.add(key)
        self.answered += 1
        return await producer.send(
            reply_topic(self.prefix, step), value, key=record.key, headers=HEADERS
        )

    def health(self) -> dict[str, Any]:
        return {"ready": self.ready, "answered": self.answered, "repeats": self.repeats}


async def main(prefix: str, http_port: int | None) -> None:
    participant = BenchParticipant(KafkaSettings(), prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if http_port is not None:
        from aiohttp import web

        async def health(request: web.Request) -> web.Response:
            return web.json_response(participant.health())

        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
    try:
        await participant.run(stop)
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="", help="topic prefix of the run")
    parser.add_argument("--http-port", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.prefix, args.http_port))
