"""Create and check the topics of the contract, on any Kafka-compatible cluster.

Metadata is only ever requested for topics that already exist: on a cluster
with ``auto.create.topics.enable`` (the Kafka default, and Tansu's behaviour)
asking about a missing topic would create it with the broker's default
partition count, which is exactly the silent mismatch these checks exist to
catch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code

from events.errors import TopicMissingError, TopicPartitionMismatchError
from sagas.kafka.authorization_failure import KafkaAuthorizationError, principal_of
from sagas.kafka.broker_watch import start_client
from sagas.kafka.kafka_settings import KafkaSettings

__all__ = [
    "METADATA_GRACE",
    "TopicMissingError",
    "TopicPartitionMismatchError",
    "admin_client",
    "check_copartitioned",
    "ensure_compacted_topic",
    "ensure_topics",
    "partition_counts",
]

DEFAULT_READY_TIMEOUT = 30.0
#: seconds an admin client waits for the brokers' first answer: without it, a broker that
#: accepts connections and says nothing holds `sagas worker`, `service` and `topics init`
#: for aiokafka's request timeout (40 s) before they can say so
CONNECT_TIMEOUT = 15.0
#: seconds a topic that was just ensured may be missing before it is reported so (callers
#: that have just created or seen a topic pass it): on a cluster of several
#: brokers, one just created by another process (a second coordinator replica creating
#: the changelog) shows in the metadata of the broker asked a moment later (seen: a
#: replica refused to start on a 3-node cluster because its broker did not list it yet)
METADATA_GRACE = 10.0


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client for ``settings``; closed on exit, also when start fails
    (`KafkaConnectionError` when Kafka does not answer within `CONNECT_TIMEOUT`)."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    try:
        await start_client(admin, CONNECT_TIMEOUT)
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    settings: KafkaSettings,
    names: Iterable[str],
    partitions: int | None = None,
    replication_factor: int | None = None,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> dict[str, int]:
    """Create the topics that are missing; return every topic's partition count.

    Idempotent: existing topics are left as they are (even with another
    partition count; ``check_copartitioned`` is the place to refuse those) and a
    concurrent creator winning the race is fine. Returns once the cluster's
    metadata shows every topic with all its partitions led, or raises
    ``TopicMissingError`` after ``timeout`` seconds.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    partitions = partitions or settings.partitions
    replication_factor = replication_factor or settings.replication_factor
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name, partitions, replication_factor, topic_configs=settings.topic_configs()
                    )
                    for name in missing
                ]
            )
            _raise_creation_errors(response, settings, partitions, replication_factor)
        expected = {name: partitions for name in missing}
        return await _wait_until_ready(admin, settings, wanted, expected, timeout)


#: Changelogs keep the newest record per key.
COMPACTED = {"cleanup.policy": "compact"}


async def ensure_compacted_topic(settings: KafkaSettings, topic: str, *, partitions: int) -> None:
    """Create a compacted topic (a changelog) with ``partitions`` if it is missing."""
    async with admin_client(settings) as admin:
        if topic not in set(await admin.list_topics()):
            configs = settings.topic_configs(**COMPACTED)
            new = NewTopic(topic, partitions, settings.replication_factor, topic_configs=configs)
            response = await admin.create_topics([new])
            _raise_creation_errors(response, settings, partitions, settings.replication_factor)
    await ensure_topics(settings, [topic], partitions=partitions)


async def partition_counts(
    settings: KafkaSettings, names: Iterable[str], *, grace: float = 0.0
) -> dict[str, int]:
    """``{topic: partition count}``; raises ``TopicMissingError`` naming absent topics
    (after asking again for ``grace`` seconds)."""
    wanted = list(dict.fromkeys(names))
    principal = _authenticated(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    async with admin_client(settings) as admin:
        while True:
            counts = await _existing_counts(admin, wanted)
            missing = [name for name in wanted if name not in counts]
            # A broker may list a topic before it knows its partitions (0): not yet.
            if not missing and all(counts.values()):
                return counts
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.2)
        refused = await _refused(admin, missing) if missing and principal else []
    if refused:
        assert principal is not None
        raise KafkaAuthorizationError(
            principal, "Describe (Read)", "Topic", refused, "TopicAuthorizationFailedError"
        )
    if missing:
        raise TopicMissingError(missing, settings.bootstrap_servers, principal)
    return counts


async def check_copartitioned(
    settings: KafkaSettings,
    names: Iterable[str],
    *,
    expected: int | None = None,
    grace: float = 0.0,
) -> int:
    """Refuse topics with different partition counts; return the common count.

    Every record of a saga is keyed by its id, so it lands in the same
    partition number only if all topics read together have the same count.
    With ``expected``, every topic must have exactly that many partitions.
    """
    counts = await partition_counts(settings, names, grace=grace)
    if not counts:
        return expected or settings.partitions
    distinct = set(counts.values())
    if len(distinct) > 1 or (expected is not None and distinct != {expected}):
        raise TopicPartitionMismatchError(counts, expected)
    return distinct.pop()


# -- helpers ----------------------------------------------------------------------------


def _raise_creation_errors(
    response: Any, settings: KafkaSettings, partitions: int, replication_factor: int
) -> None:
    for entry in response.to_object().get("topic_errors", []):
        code = entry.get("error_code", 0)
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        error_class = for_code(code)
        if error_class is TopicAuthorizationFailedError:
            raise KafkaAuthorizationError(
                principal_of(settings),
                "Create",
                "Topic",
                [entry.get("topic")],
                "TopicAuthorizationFailedError; the topic is missing, or hidden from a "
                "principal without an ACL on it",
            )
        raise error_class(
            f"cannot create topic {entry.get('topic')!r} with {partitions} partitions and "
            f"replication factor {replication_factor} on {settings.bootstrap_servers}: "
            f"{entry.get('error_message') or error_class.__name__}"
        )


def _authenticated(settings: KafkaSettings) -> str | None:
    """The principal, when the cluster knows who we are (it may hide topics from us)."""
    return principal_of(settings) if settings.security_protocol != "PLAINTEXT" else None


async def _existing_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts of those of ``names`` that exist, without auto-creating any."""
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    return {
        description["topic"]: len(description["partitions"])
        for description in await admin.describe_topics(present)
    }


async def _refused(admin: AIOKafkaAdminClient, names: list[str]) -> list[str]:
    """Those of ``names`` (absent from our topic list) that Kafka refuses to describe to us
    rather than does not have. Asked without auto-creation, which the admin client's
    ``describe_topics`` would allow."""
    from aiokafka.protocol.metadata import MetadataRequest

    response = await admin._send_request(MetadataRequest(names, allow_auto_topic_creation=False))
    return [
        topic["topic"]
        for topic in response.to_object()["topics"]
        if topic["error_code"] == TopicAuthorizationFailedError.errno
    ]


def _ready_count(description: dict[str, Any]) -> int:
    """Partitions of a described topic that have a leader (0 while it is being created)."""
    if description.get("error_code", 0) != 0:
        return 0
    return sum(
        1
        for p in description.get("partitions", [])
        if p.get("error_code", 0) == 0 and p.get("leader", -1) >= 0
    )


async def _wait_until_ready(
    admin: AIOKafkaAdminClient,
    settings: KafkaSettings,
    names: list[str],
    expected: dict[str, int],
    timeout: float,
) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.02
    while True:
        existing = set(await admin.list_topics())
        present = [name for name in names if name in existing]
        descriptions = await admin.describe_topics(present) if present else []
        counts = {d["topic"]: len(d.get("partitions", [])) for d in descriptions}
        ready = {d["topic"]: _ready_count(d) for d in descriptions}
        waiting = [
            name
            for name in names
            if counts.get(name, 0) < expected.get(name, 1) or ready.get(name, 0) < counts[name]
        ]
        if not waiting:
            return {name: counts[name] for name in names}
        if loop.time() >= deadline:
            raise TopicMissingError(waiting, settings.bootstrap_servers)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
