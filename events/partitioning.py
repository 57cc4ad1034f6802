"""Which partition a record lands in: Kafka's default (murmur2) partitioner on the key.

The wire contract keys every record by saga id, so all records of a saga share a
partition number on every topic; the coordinator's table uses the same mapping.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``.

    Cached: every record of a saga asks again, and murmur2 is pure Python.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions
