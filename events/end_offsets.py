"""True end offsets of partitions, also on the embedded broker.

Tansu 0.6 answers ListOffsets(latest) with the first offset of the last
write batch plus one, not the end of the log (13 records written as batches of
5 and 8 reported an end of 6). Anything that reads "up to the end" with that
answer stops early: faust's table recovery among them, which would bring a
restarted coordinator back without the newest saga states. The high watermark
in a fetch response is right, so this fetches once from just before the
reported end and keeps the larger of the two. On Apache Kafka both agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer


async def true_end_offsets(
    consumer_kwargs: Mapping[str, Any], reported: Mapping[Any, int], *, timeout: float = 5.0
) -> dict[Any, int]:
    """``reported`` (partition -> end offset from ListOffsets), corrected by fetching."""
    result = dict(reported)
    if not result:
        return result
    consumer = AIOKafkaConsumer(**consumer_kwargs, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(result))
        for tp, offset in result.items():
            consumer.seek(tp, max(offset - 1, 0))
        pending = set(result)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and loop.time() < deadline:
            await consumer.getmany(*pending, timeout_ms=100, max_records=1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    result[tp] = max(result[tp], highwater)
                    pending.discard(tp)
        return result
    finally:
        await consumer.stop()
