"""Which replica holds a saga, and reading from this replica's part of the table.

Each replica holds the sagas of the table partitions assigned to it. The
group's assignor (`sagas.membership`) tells every member which member (by its
API URL) owns which partition; a saga's partition is the murmur2 hash of its
id (`events.partitioning.partition_for`), as for every record of the saga.
"""

from __future__ import annotations

from yarl import URL

from events.partitioning import partition_for
from sagas import table_codec
from sagas.api.replica import Replica
from sagas.state import SagaState

#: Set on a request one replica sends another, so it is never passed on again.
FORWARDED = "X-Sagas-Forwarded"


def _ident(url: str | URL) -> tuple[str, int]:
    u = URL(str(url))
    return (u.host or "", int(u.port or 80))


class Cluster:
    """This replica's view of the coordinator group and of its own table partitions."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    @property
    def self_url(self) -> str:
        return self.replica.url

    def _distribution(self) -> dict[str, set[int]]:
        """member URL -> the table partitions it owns (as of the last rebalance)."""
        dist: dict[str, set[int]] = {}
        for partition, url in self.replica.owners().items():
            dist.setdefault(url, set()).add(partition)
        return dist

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
        return partition_for(saga_id.encode(), self.replica.partitions)

    def owner_of(self, saga_id: str) -> str | None:
        """URL of the replica that holds ``saga_id``; None if nobody does (rebalancing)."""
        return self.replica.owners().get(self.partition_of(saga_id))

    def is_self(self, url: str | None) -> bool:
        return url is not None and _ident(url) == _ident(self.self_url)

    def owned_partitions(self) -> set[int]:
        return set(self.replica.owned_partitions())

    # -- readiness ---------------------------------------------------------------------

    def not_ready(self) -> str | None:
        """Why this replica cannot answer for its sagas right now, or None."""
        return self.replica.not_ready()

    def check_start(self) -> str | None:
        """None if this replica takes a new start now, else why not (its bound)."""
        return self.replica.check_start()

    # -- this replica's table -----------------------------------------------------------

    def local_state(self, saga_id: str) -> SagaState | None:
        return table_codec.saga_state(self.replica.stored_values().get(saga_id.encode()))
