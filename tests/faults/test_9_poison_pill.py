"""A record too large to dead-letter unchanged, on a topic the coordinator reads.

The coordinator dead-letters a record it cannot decode by publishing it
again with ``x-dlq-*`` headers. Its producer refused records over its
``max_request_size`` (1,000,000 bytes by default), which is lower
than what the coordinator accepts to decode (``SAGAS_MAX_RECORD_BYTES``,
1,048,576) and than what the broker accepted: the send raises
``MessageSizeTooLargeError``, the batch fails, the replica exits (or its
agent crashes), and the record is replayed by the next owner -- a poison pill
that took every replica down (found here; fixed: such a dead letter now goes
without its value, ``x-dlq-value-dropped``). Runs last: a regression would
leave the system without coordinators. The participants had the same bug
(`test_dead_letter_size`).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from events.codec import DEFAULT_MAX_BYTES
from tests.faults.checker import VERDICTS, Verdict
from tests.faults.system import COORDINATORS, FaultSystem

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_a_huge_record_on_a_coordinator_topic_is_dead_lettered(faults: FaultSystem) -> None:
    value = b"\xff" + b"x" * (DEFAULT_MAX_BYTES + 1_000)  # not JSON, and over the limit
    producer = AIOKafkaProducer(
        max_request_size=4 * DEFAULT_MAX_BYTES, **faults.launcher.kafka.aiokafka_kwargs()
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{faults.launcher.prefix}orders", value, key=b"poison", headers=[("x-poison", b"1")]
        )
    finally:
        await producer.stop()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and all(faults.launcher[n].alive for n in COORDINATORS):
        await asyncio.sleep(0.5)
    dead = [n for n in COORDINATORS if not faults.launcher[n].alive]
    VERDICTS.append(
        Verdict(
            "huge record on a coordinator topic",
            sagas=0,
            terminal=0,
            violations=[f"{n} exited" for n in dead],
            notes=["poison pill: coordinators exited" if dead else "coordinators survived"],
        )
    )
    assert not dead, f"a huge record on orders took down {', '.join(dead)}"
