"""Which replica holds a saga, and reading from this replica's part of the table.

Each replica holds the sagas of the table partitions assigned to it. faust's
partition assignor tells every member which member (by its canonical URL)
owns which changelog partition; a saga's partition is the murmur2 hash of its
id (`sagas.coordinator.partition_for`), as for every record of the saga.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from yarl import URL

from sagas.state import SagaState
from sagas.state_codec import load_state

if TYPE_CHECKING:
    from sagas.coordinator import Coordinator

#: Set on a request one replica sends another, so it is never passed on again.
FORWARDED = "X-Sagas-Forwarded"


def _ident(url: str | URL) -> tuple[str, int]:
    u = URL(str(url))
    return (u.host or "", int(u.port or 80))


class Cluster:
    """This replica's view of the coordinator group and of its own table partitions."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    @property
    def app(self) -> Any:
        return self.c.app

    @property
    def self_url(self) -> str:
        return str(self.app.conf.canonical_url)

    def _changelog(self) -> str:
        return str(self.c.table.changelog_topic.get_topic_name())

    def _distribution(self) -> dict[str, set[int]]:
        """member URL -> the table partitions it owns (as of the last rebalance)."""
        topic = self._changelog()
        try:
            dist = self.app.assignor.changelog_distribution
        except AttributeError:
            return {}
        return {url: set(tps.get(topic, ())) for url, tps in dist.items()}

    def members(self) -> list[str]:
        """URLs of every replica in the group, this one included."""
        urls = list(self._distribution())
        if not any(_ident(u) == _ident(self.self_url) for u in urls):
            urls.append(self.self_url)
        return urls

    def peers(self) -> list[str]:
        me = _ident(self.self_url)
        return [u for u in self.members() if _ident(u) != me]

    def partition_of(self, saga_id: str) -> int:
        from sagas.coordinator import partition_for

        return partition_for(saga_id.encode(), self.c.kafka.partitions)

    def owner_of(self, saga_id: str) -> str | None:
        """URL of the replica that holds ``saga_id``; None if nobody does (rebalancing)."""
        partition = self.partition_of(saga_id)
        for url, partitions in self._distribution().items():
            if partition in partitions:
                return url
        return None

    def is_self(self, url: str | None) -> bool:
        return url is not None and _ident(url) == _ident(self.self_url)

    def owned_partitions(self) -> set[int]:
        topic = self._changelog()
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:  # noqa: BLE001 - not assigned yet
            return set()
        return {tp.partition for tp in actives if tp.topic == topic}

    # -- readiness ---------------------------------------------------------------------

    def not_ready(self) -> str | None:
        """Why this replica cannot answer for its sagas right now, or None."""
        app = self.app
        if not self._consumer_started():
            return "the worker is starting"
        if app.rebalancing:
            return "the consumer group is rebalancing"
        recovery = getattr(app.tables, "recovery", None)
        if recovery is not None and not recovery.completed.is_set():
            return "table recovery is in progress"
        if not self._distribution():
            return "no partitions assigned yet (joining the consumer group)"
        return None

    def _consumer_started(self) -> bool:
        try:
            self.app.consumer.assignment()
        except Exception:  # noqa: BLE001
            return False
        return True

    # -- this replica's table -----------------------------------------------------------

    def local_state(self, saga_id: str) -> SagaState | None:
        from sagas.coordinator import EARLY_MARKER

        raw = self.c.table.data.get(saga_id.encode())
        if raw is None or raw[:1] == EARLY_MARKER:
            return None
        return load_state(raw)

    def local_docs(self) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """(raw, parsed JSON) of every saga in the partitions this replica owns now."""
        from sagas.coordinator import EARLY_MARKER, partition_for

        owned = self.owned_partitions()
        partitions = self.c.kafka.partitions
        for key, raw in list(self.c.table.data.items()):
            if raw is None or raw[:1] == EARLY_MARKER:
                continue
            # Written-through keys of partitions since revoked stay in a memory store.
            if partition_for(key, partitions) not in owned:
                continue
            yield raw, orjson.loads(raw)
