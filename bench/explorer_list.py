"""How fast the saga explorer's list, search and overview answer with a large table.

    python -m bench.explorer_list [--sagas 100000] [--repeat 20]

Builds a table of order sagas (completed, compensated, running and parked ones,
each with an order id in its context) in memory, serves the real HTTP API over
it on a loopback port (one replica that owns every partition), and times each
request from a client in the same process: median and 95th percentile in ms.
The explorer's target is < 200 ms for list and search on the 2-core machine.
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from events.envelope import CloudEvent
from sagas.api import HttpApi
from sagas.api.collectors import TableCensus
from sagas.loader import DefinitionRegistry
from sagas.state import SagaState, SagaStatus
from sagas.state_codec import dump_state
from sagas.testing import SagaTestKit
from services import definitions

T0 = 1_780_000_000.0
PARTITIONS = 8


def templates() -> list[SagaState]:
    """One saga of each outcome, made by the real state machine."""
    definition = definitions.load("order_orchestrated")
    out = []
    for ship in ("shipping.scheduled", "shipping.failed", None):
        kit = SagaTestKit(definition, start_time=T0)
        for command, reply in (
            ("inventory.reserve", "inventory.reserved"),
            ("payment.authorize", "payment.authorized"),
            ("payment.capture", "payment.captured"),
            ("inventory.commit", "inventory.committed"),
            ("inventory.release", "inventory.released"),
            ("payment.void", "payment.voided"),
            ("payment.refund", "payment.refunded"),
        ):
            kit.on(command).reply(reply, {})
        if ship is None:
            kit.on("shipping.schedule").silence()
        else:
            kit.on("shipping.schedule").reply(ship, {})
        data = {"customer_id": "cust-001", "amount": 1250, "lines": [{"sku": "SKU-001", "qty": 1}]}
        out.append(kit.start("template", data).state)
    return out


def build_table(count: int) -> dict[bytes, bytes]:
    done, undone, running = templates()
    table: dict[bytes, bytes] = {}
    for i in range(count):
        base = (done, done, done, undone, running)[i % 5]
        status = SagaStatus.FAILED if i % 997 == 0 else base.status
        started = T0 + i * 0.05
        state = replace(
            base,
            saga_id=f"order-{i:07d}",
            status=status,
            started_at=started,
            updated_at=started + 2.0,
            finished_at=started + 2.0 if status.terminal else None,
            context={**base.context, "order_id": f"ord-{i:07d}"},
        )
        table[state.saga_id.encode()] = dump_state(state)
    return table


class TableReplica:
    """A `sagas.api.replica.Replica` over a table in memory, owning every partition."""

    def __init__(self, values: Mapping[bytes, bytes], url: str) -> None:
        self.values = values
        self._url = url
        self._registry = DefinitionRegistry([definitions.load("order_orchestrated")])

    @property
    def registry(self) -> DefinitionRegistry:
        return self._registry

    @property
    def url(self) -> str:
        return self._url

    @property
    def partitions(self) -> int:
        return PARTITIONS

    def owners(self) -> dict[int, str]:
        return {p: self._url for p in range(PARTITIONS)}

    def owned_partitions(self) -> frozenset[int]:
        return frozenset(range(PARTITIONS))

    def not_ready(self) -> str | None:
        return None

    def stored_values(self) -> Mapping[bytes, bytes]:
        return self.values

    async def publish_control(self, event: CloudEvent) -> None:
        raise RuntimeError("the benchmark changes nothing")

    def input_lag(self) -> list[Any]:
        return []

    def check_start(self) -> str | None:
        return None


async def measure(count: int, repeat: int, port: int) -> list[tuple[str, float, float, int]]:
    began = time.perf_counter()
    table = build_table(count)
    gc.freeze()  # a coordinator freezes what it recovers (sagas/process/gc_policy.py)
    print(f"table of {len(table):,} sagas built in {time.perf_counter() - began:.1f} s")
    url = f"http://127.0.0.1:{port}"
    replica = TableReplica(table, url)
    api = HttpApi(replica, CollectorRegistry(), TableCensus(replica))  # type: ignore[arg-type]
    runner = web.AppRunner(api.application(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    middle = count // 2
    queries = {
        "list newest 50": "/sagas?limit=50",
        "list failed": "/sagas?status=failed&limit=50",
        "list compensated, 3rd page": None,
        "list time range": f"/sagas?since={T0 + 100:.0f}&until={T0 + 400:.0f}&limit=50",
        "search order id": f"/sagas?q=ord-{middle:07d}",
        "search saga id": f"/sagas?q=order-{middle:07d}",
        "overview": "/overview",
    }
    results = []
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> tuple[float, dict[str, Any]]:
            start = time.perf_counter()
            async with http.get(url + path) as response:
                body = await response.json()
                assert response.status == 200, body
            return (time.perf_counter() - start) * 1000, body

        _, first = await get("/sagas?status=compensated&limit=50")
        _, second = await get(f"/sagas?status=compensated&limit=50&cursor={first['next_cursor']}")
        queries["list compensated, 3rd page"] = (
            f"/sagas?status=compensated&limit=50&cursor={second['next_cursor']}"
        )
        for name, path in queries.items():
            assert path is not None
            times, found = [], 0
            for _ in range(repeat):
                ms, body = await get(path)
                times.append(ms)
                found = len(body.get("sagas", body.get("definitions", [])))
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results.append((name, statistics.median(times), p95, found))
    await runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sagas", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args()
    port = args.port
    if port == 0:
        from sagas.process.free_ports import free_port

        port = free_port()
    results = asyncio.run(measure(args.sagas, args.repeat, port))
    print(f"\n{'request':<30} {'median ms':>10} {'p95 ms':>8} {'rows':>6}")
    for name, median, p95, found in results:
        print(f"{name:<30} {median:>10.1f} {p95:>8.1f} {found:>6}")


if __name__ == "__main__":
    main()
