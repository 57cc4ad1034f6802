"""Who owns which partition: the coordinators' consumer-group assignor.

Every record of a saga (trigger, replies, control messages, its state in the
table) is keyed by saga id and lands in the same partition number *n* of every
topic. So partition *n* of every input topic, and with it the table partition
*n*, must go to one replica: this assignor hands out partition numbers, not
topic partitions, round-robin over the members sorted by their stable name
(static instance id, else URL), which keeps a restarted replica's share the same.

Each member puts the URL of its HTTP API in its join metadata; the leader
sends every member the whole map ``partition -> URL`` with its assignment, so
any replica can forward a request about a saga to the replica that holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger("sagas.membership")

__all__ = ["CoPartitionedAssignor"]


class CoPartitionedAssignor(AbstractPartitionAssignor):
    """Partition number *n* of every subscribed topic goes to the same member."""

    name = "sagas-copartitioned"
    version = 0

    def __init__(self, url: str, member_name: str | None = None) -> None:
        self.url = url
        self.member_name = member_name or url
        #: partition number -> URL of the replica that owns it, as of the last assignment
        self.owners: dict[int, str] = {}

    # aiokafka declares these as classmethods; it calls them on the object it is given.
    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        user_data = orjson.dumps({"url": self.url, "name": self.member_name})
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), user_data)

    def assign(  # type: ignore[override]
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        info = {
            member_id: _member_info(meta.user_data, member_id)
            for member_id, meta in members.items()
        }
        order = sorted(members, key=lambda m: (info[m]["name"], m))
        subscribed: dict[str, list[str]] = {}
        for member_id in order:
            for topic in members[member_id].subscription:
                subscribed.setdefault(topic, []).append(member_id)
        numbers: set[int] = set()
        for topic in subscribed:
            numbers |= set(cluster.partitions_for_topic(topic) or ())
        if len({tuple(sorted(members[m].subscription)) for m in order}) > 1:
            log.error(
                "coordinator replicas subscribe to different topics (different definition "
                "files?): sagas whose topics only some replicas read cannot be kept together; "
                "run every replica with the same definitions"
            )
        owner_of = {n: order[i % len(order)] for i, n in enumerate(sorted(numbers))}
        plan: dict[str, dict[str, list[int]]] = {m: {} for m in order}
        for topic, readers in subscribed.items():
            for n in sorted(cluster.partitions_for_topic(topic) or ()):
                member = owner_of[n] if owner_of[n] in readers else readers[n % len(readers)]
                plan[member].setdefault(topic, []).append(n)
        owners = {str(n): info[m]["url"] for n, m in owner_of.items()}
        user_data = orjson.dumps({"owners": owners})
        return {
            member_id: ConsumerProtocolMemberAssignment(
                self.version, sorted(plan[member_id].items()), user_data
            )
            for member_id in order
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        try:
            owners = orjson.loads(assignment.user_data or b"{}").get("owners", {})
            self.owners = {int(n): str(url) for n, url in owners.items()}
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            log.warning("the group leader sent no partition owners; is every replica this version?")
            self.owners = {}


def _member_info(user_data: bytes | None, member_id: str) -> dict[str, str]:
    try:
        doc = orjson.loads(user_data or b"{}")
        return {"url": str(doc["url"]), "name": str(doc.get("name") or doc["url"])}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return {"url": "", "name": member_id}
