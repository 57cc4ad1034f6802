"""Make sure the coordinator's topics exist and are co-partitioned before it starts."""

from __future__ import annotations

from events.topics import Topics
from sagas.kafka.admin import (
    METADATA_GRACE,
    check_copartitioned,
    ensure_compacted_topic,
    ensure_topics,
)
from sagas.kafka.kafka_settings import KafkaSettings
from sagas.loader import DefinitionRegistry


def coordinator_topics(registry: DefinitionRegistry, topics: Topics) -> tuple[list[str], list[str]]:
    """(topics the coordinator reads, topics it writes)."""
    reads = sorted(registry.topics_read() | set(topics.inputs()))
    writes = set().union(*(d.topics_written() for d in registry))
    writes |= {topics.lifecycle, topics.deadletter}
    return reads, sorted(writes - set(reads))


async def prepare_topics(
    kafka: KafkaSettings,
    registry: DefinitionRegistry,
    topics: Topics,
    *,
    create: bool = True,
    changelog: str | None = None,
) -> None:
    """Create what is missing (with ``create``), then refuse topics that are not co-partitioned.

    ``changelog`` is the saga table's changelog (`sagas.coordinator.changelog_topic`); it
    is always created when missing, compacted, with the inputs' partition count.
    """
    reads, writes = coordinator_topics(registry, topics)
    if create:
        await ensure_topics(kafka, [*reads, *writes])
    # Every record of a saga must land in the same partition number of every input.
    grace = METADATA_GRACE if create else 0.0  # just ensured: every broker lists them soon
    count = await check_copartitioned(kafka, reads, grace=grace)
    if changelog is not None:
        await ensure_compacted_topic(kafka, changelog, partitions=count)
        await check_copartitioned(kafka, [*reads, changelog], grace=METADATA_GRACE)
