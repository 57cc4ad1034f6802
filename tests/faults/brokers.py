"""A 3-node Apache Kafka cluster for broker faults, and what the scenarios ask of it.

`BrokerCluster` owns an `ApacheKafka(nodes=3)` (each node in a network
namespace of its own when the machine allows, `tests.faults.netns`) and
answers, from the metadata of the nodes that are up and reachable:

* `leader_of`: the node leading the most partitions of some topics (the
  coordinator's inputs: whom to kill);
* `wait_led_elsewhere`: until no partition of those topics is led by a node
  (the controller fenced it and moved its leaderships);
* `wait_in_sync`: until every partition of those topics has every replica in
  its ISR again (a restarted or healed node caught up).

Node indexes are 0-based; Kafka's node ids are index + 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from sagas.kafka.apache_kafka import ApacheKafka
from sagas.kafka.kafka_settings import KafkaSettings
from tests.faults.netns import BrokerNetwork, netns_unavailable

__all__ = ["BrokerCluster", "PartitionState"]

#: Replicas of every topic and the ISR size an acks=all write needs.
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # node id, -1 when none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class BrokerCluster:
    def __init__(self) -> None:
        self.why_no_netns = netns_unavailable()
        self.network: BrokerNetwork | None = None
        self.kafka: ApacheKafka | None = None
        self.down: set[int] = set()  # killed, paused or cut off: not asked for metadata

    async def start(self) -> BrokerCluster:
        try:
            if self.why_no_netns is None:
                self.network = BrokerNetwork(nodes=3)
                self.network.__enter__()
                self.kafka = ApacheKafka(
                    nodes=3,
                    hosts=self.network.addresses,
                    node_commands=self.network.commands,
                    startup_timeout=180.0,
                )
            else:
                self.kafka = ApacheKafka(nodes=3, startup_timeout=180.0)
            await self.kafka.astart()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        try:
            if self.kafka is not None:
                await self.kafka.astop()
        finally:
            if self.network is not None:
                self.network.close()

    @property
    def running(self) -> ApacheKafka:
        assert self.kafka is not None, "start() the cluster first"
        return self.kafka

    def settings(self) -> KafkaSettings:
        """Client settings for the engine: every node, replication factor 3, min ISR 2,
        idempotent producers (without them a SIGKILLed leader left duplicate records)."""
        return self.running.settings().model_copy(
            update={
                "replication_factor": REPLICATION_FACTOR,
                "min_insync_replicas": MIN_INSYNC_REPLICAS,
                "enable_idempotence": True,
            }
        )

    def env(self) -> dict[str, str]:
        """The same, for the processes of the system."""
        return {
            "SAGAS_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
            "SAGAS_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
            "KAFKA_ENABLE_IDEMPOTENCE": "true",
        }

    # -- faults, by node (0-based) -----------------------------------------------------

    async def kill(self, node: int, sig: int) -> None:
        """SIGKILL or SIGTERM ``node`` and wait until it has exited (off the event loop)."""
        self.down.add(node)
        await asyncio.to_thread(self.running.kill_node, node, sig)

    def restart(self, node: int) -> None:
        self.running.start_node(node)

    def pause(self, node: int) -> None:
        self.down.add(node)
        self.running.pause_node(node)

    def resume(self, node: int) -> None:
        self.running.resume_node(node)

    def cut(self, node: int) -> None:
        assert self.network is not None
        self.down.add(node)
        self.network.cut(node)

    def heal(self, node: int) -> None:
        assert self.network is not None
        self.network.heal(node)

    async def wait_back(self, node: int, topics: Sequence[str], timeout: float) -> float:
        """Until ``node`` is back in the ISR of every partition of ``topics``."""
        took = await self.wait_in_sync(topics, timeout)
        self.down.discard(node)
        return took

    # -- metadata from the nodes that are up -----------------------------------------

    async def topic_names(self, prefixes: Sequence[str]) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._live_bootstrap())
        try:
            await admin.start()
            names = await admin.list_topics()
        finally:
            await admin.close()
        return sorted(n for n in names if n.startswith(tuple(prefixes)))

    def _live_bootstrap(self) -> str:
        return ",".join(self.running.node_address(i) for i in range(3) if i not in self.down)

    async def partitions(self, topics: Iterable[str]) -> list[PartitionState]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._live_bootstrap(), request_timeout_ms=5000
        )
        try:
            await asyncio.wait_for(admin.start(), 10)
            described = await asyncio.wait_for(admin.describe_topics(sorted(set(topics))), 10)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        return [
            PartitionState(
                d["topic"],
                p["partition"],
                p.get("leader", -1),
                tuple(p.get("replicas", ())),
                tuple(p.get("isr", ())),
            )
            for d in described
            for p in d.get("partitions", [])
        ]

    async def topic_configs(self, topic: str) -> dict[str, str]:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        admin = AIOKafkaAdminClient(bootstrap_servers=self._live_bootstrap())
        try:
            await admin.start()
            (response,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
        finally:
            await admin.close()
        resources: list[Any] = response.to_object()["resources"]
        return {c["config_names"]: c["config_value"] for c in resources[0]["config_entries"]}

    async def leader_of(self, topics: Sequence[str]) -> int:
        """The node (0-based) that leads the most partitions of ``topics``."""
        counts = Counter(p.leader for p in await self.partitions(topics) if p.leader > 0)
        if not counts:
            raise AssertionError(f"no partition of {list(topics)} has a leader")
        node_id, _ = counts.most_common(1)[0]
        return int(node_id) - 1

    async def _poll(self, what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> float:
        began = time.monotonic()
        last: BaseException | None = None
        while True:
            try:
                if await check():
                    return time.monotonic() - began
            except Exception as exc:  # noqa: BLE001 - a node may be on its way: ask again
                last = exc
            if time.monotonic() - began > timeout:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting until {what} (last error: {last!r})"
                )
            await asyncio.sleep(0.5)

    async def wait_led_elsewhere(self, node: int, topics: Sequence[str], timeout: float) -> float:
        """Until no partition of ``topics`` is led by ``node``; the seconds it took."""

        async def moved() -> bool:
            states = await self.partitions(topics)
            return all(p.leader > 0 and p.leader != node + 1 for p in states)

        return await self._poll(f"node {node + 1} leads nothing", moved, timeout)

    async def wait_in_sync(self, topics: Sequence[str], timeout: float) -> float:
        """Until every partition of ``topics`` has a leader and all its replicas in ISR."""

        async def in_sync() -> bool:
            states = await self.partitions(topics)
            return bool(states) and all(
                p.leader > 0 and set(p.isr) == set(p.replicas) for p in states
            )

        return await self._poll("every replica is back in sync", in_sync, timeout)
