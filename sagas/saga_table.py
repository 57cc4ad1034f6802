"""The saga states of the partitions one replica owns, and their changelog.

In memory: ``data`` maps saga id (bytes) to the state as stored (JSON bytes,
or an early-events record). Durable: a compacted topic with one record per
change, in the partition of the saga id, so partition *n* of the table belongs
to whoever owns partition *n* of the inputs.

Each record carries the consumer-group generation its writer held. A replica
that was paused past its session (a "zombie") can still write after its
partitions moved on; when the table is rebuilt, a record from an older
generation than one already read for that saga is ignored, and if such a
stale record is the newest for its saga the rebuilding replica logs the good
state again, so that log compaction cannot keep the stale one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from events.partitioning import partition_for
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.kafka.log_reader import read_to_end

log = logging.getLogger("sagas.table")

#: header naming the consumer-group generation of the replica that wrote a record
GENERATION_HEADER = "x-sagas-generation"

__all__ = ["GENERATION_HEADER", "Recovery", "SagaTable", "record_generation"]


@dataclass
class Recovery:
    """What rebuilding some partitions found."""

    partitions: frozenset[int]
    records: int = 0
    keys: set[bytes] = field(default_factory=set)
    #: saga ids whose newest record came from an older generation (a zombie's write)
    relog: set[bytes] = field(default_factory=set)
    stale: int = 0


class SagaTable:
    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partitions: int,
        *,
        isolation: str = "read_uncommitted",
    ) -> None:
        self.kafka = kafka
        #: read_committed under exactly_once: an aborted transaction's states never come back
        self.isolation = isolation
        self.topic = topic
        self.partitions = partitions
        self.data: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def partition_of(self, key: bytes) -> int:
        return partition_for(key, self.partitions)

    def store(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Apply logged changes in memory (None removes the saga)."""
        for key, raw in writes.items():
            if raw is None:
                self.data.pop(key, None)
            else:
                self.data[key] = raw

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the sagas of ``partitions`` (revoked); returns how many."""
        gone = set(partitions)
        if not gone:
            return 0
        keys = [key for key in self.data if self.partition_of(key) in gone]
        for key in keys:
            del self.data[key]
        return len(keys)

    async def recover(
        self, partitions: Iterable[int], progress: Callable[[int], None] | None = None
    ) -> Recovery:
        """Read ``partitions`` of the changelog from the start and hold their sagas."""
        found = Recovery(frozenset(partitions))
        tps = [TopicPartition(self.topic, n) for n in sorted(found.partitions)]
        best: dict[bytes, int] = {}
        data = self.data
        async for batch in read_to_end(self.kafka, tps, isolation=self.isolation):
            for record in batch:
                key = record.key
                if key is None:
                    continue
                generation = record_generation(record.headers)
                if generation < best.get(key, -1):
                    found.stale += 1
                    found.relog.add(key)
                    continue
                best[key] = generation
                found.relog.discard(key)
                if record.value is None:
                    data.pop(key, None)
                else:
                    data[key] = record.value
            found.records += len(batch)
            if progress is not None:
                progress(found.records)
        found.keys = set(best)
        if found.stale:
            log.warning(
                "table partitions %s: ignored %d changelog records a replica wrote after it "
                "had lost the partition (older generation); %d sagas are logged again",
                sorted(found.partitions),
                found.stale,
                len(found.relog),
            )
        return found


def record_generation(headers: Iterable[tuple[str, bytes]] | None) -> int:
    """The writer's consumer-group generation of a changelog record (0 if not named)."""
    for name, value in headers or ():
        if name == GENERATION_HEADER:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
