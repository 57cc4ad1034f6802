"""What the HTTP API may read of one coordinator replica, and ask of it.

The API is built beside the coordinator (`sagas.cli.worker_cmd`), not by it,
and sees only this: the loaded definitions, who owns which partition, the
stored values of the sagas this replica holds (read through
`sagas.table_codec`), a way to publish a control message, the input lag, and whether it takes
new starts now.
`sagas.coordinator.Coordinator` is one; a test may pass any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from events.envelope import CloudEvent
from sagas.kafka.consumer_lag import LagRow
from sagas.loader import DefinitionRegistry


class Replica(Protocol):
    @property
    def registry(self) -> DefinitionRegistry: ...

    @property
    def url(self) -> str:
        """This replica's advertised API URL."""
        ...

    @property
    def partitions(self) -> int:
        """Partitions of the input topics and of the saga table."""
        ...

    def owners(self) -> Mapping[int, str]:
        """Table partition -> URL of the replica that owns it (as of the last rebalance)."""
        ...

    def owned_partitions(self) -> frozenset[int]: ...

    def not_ready(self) -> str | None:
        """Why this replica cannot answer for its sagas right now, or None."""
        ...

    def stored_values(self) -> Mapping[bytes, bytes]:
        """Saga id -> stored table value, of the partitions in hand (`sagas.table_codec`)."""
        ...

    async def publish_control(self, event: CloudEvent) -> None:
        """Publish ``event`` to the control topic, keyed by its saga; returns once durable."""
        ...

    def input_lag(self) -> list[LagRow]: ...

    def check_start(self) -> str | None:
        """None if a new start may go ahead now, else why not (admission control's bound;
        the refusal is counted)."""
        ...
