"""Drive a running system: place the scenario's orders, follow their sagas, check the books.

`drive` works on any `services.launch.Launcher` that runs the four order
services; the demo, the end-to-end tests and benchmarks share it.

Orders are placed open loop: order ``i`` goes out at ``start + i / rate``
whether or not earlier ones have finished, like customers who do not wait
for each other. ``faults`` runs actions (kill a service, restart it...) as
soon as a given number of orders has been placed, alongside the placing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.envelope import new_event
from services.demo.checks import Check, orders_match_sagas, run_all
from services.demo.observe import SagaObserver, SagaTrace
from services.demo.scenario import Order, Scenario, check_late_delay
from services.launch import Launcher

SOURCE = "sagastream/demo"
#: (placed, terminal, total) -> None; called about ten times a second
Progress = Callable[[int, int, int], None]
Fault = Callable[[], Coroutine[Any, Any, Any]]
VIEWS = ("order", "inventory", "payment", "shipping")


@dataclass
class RunResult:
    scenario: Scenario
    orders: list[Order]
    traces: dict[str, SagaTrace]
    checks: list[Check]
    views: dict[str, Any]
    placed_from: float  # epoch seconds: first order sent
    placed_until: float  # epoch seconds: last order sent
    settled_at: float  # epoch seconds: every saga terminal (or the wait gave up)
    metrics_urls: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def trace(self, order: Order) -> SagaTrace:
        return self.traces.get(order.saga_id) or SagaTrace(order.saga_id)


async def drive(
    system: Launcher,
    scenario: Scenario,
    *,
    progress: Progress | None = None,
    faults: Mapping[int, Fault] | None = None,
    settle_timeout: float = 90.0,
) -> RunResult:
    """Place every order, wait until every saga ends (or ``settle_timeout`` after the last
    order), read the services' /invariants and check them."""
    orders = scenario.make_orders()
    check_late_delay(scenario, system.definitions)
    topic = f"{system.prefix}orders"
    placed = 0
    async with SagaObserver(system.kafka, system.definitions, system.topics) as observer:
        producer = AIOKafkaProducer(**system.kafka.producer_kwargs(), linger_ms=5)
        await producer.start()
        try:
            ids = [o.saga_id for o in orders]

            def count_placed(n: int) -> None:
                nonlocal placed
                placed = n

            placing = asyncio.create_task(
                _place(producer, topic, orders, scenario.rate, faults or {}, count_placed)
            )
            deadline: float | None = None
            while True:
                done = observer.terminal(ids)
                if progress is not None:
                    progress(placed, done, len(orders))
                if placing.done():
                    placed_from, placed_until = placing.result()
                    if deadline is None:
                        deadline = time.monotonic() + settle_timeout
                    if done == len(orders) or time.monotonic() > deadline:
                        break
                await asyncio.sleep(0.1)
            settled_at = time.time()
        finally:
            if not placing.done():
                placing.cancel()
            await producer.stop()
        traces = dict(observer.traces)
    views = await _settled_views(system, orders, traces)
    checks = run_all(orders, traces, system.definitions, scenario.initial_stock(), views)
    return RunResult(
        scenario,
        orders,
        traces,
        checks,
        views,
        placed_from,
        placed_until,
        settled_at,
        system.metrics_urls(),
    )


async def _place(
    producer: AIOKafkaProducer,
    topic: str,
    orders: list[Order],
    rate: float,
    faults: Mapping[int, Fault],
    count: Callable[[int], None],
) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = time.time()
    sent: list[asyncio.Future[Any]] = []
    fault_tasks: list[asyncio.Task[Any]] = []
    for i, order in enumerate(orders):
        wait = start + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        event = new_event(
            "order.placed", source=SOURCE, sagaid=order.saga_id, data=order.event_data()
        )
        value, headers = encode(event)
        sent.append(await producer.send(topic, value, key=order.saga_id.encode(), headers=headers))
        count(i + 1)
        if (fault := faults.get(i + 1)) is not None:
            fault_tasks.append(asyncio.create_task(fault()))
    await asyncio.gather(*sent)
    last = time.time()
    await asyncio.gather(*fault_tasks)
    return first, last


async def _settled_views(
    system: Launcher, orders: list[Order], traces: Mapping[str, SagaTrace], timeout: float = 15.0
) -> dict[str, Any]:
    """The services' /invariants, once the order service has caught up with the lifecycle
    (it reads the same events, a moment later); as they are after ``timeout`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        order_view = await system.get_json("order", "/invariants")
        if orders_match_sagas(orders, traces, order_view).ok or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    views: dict[str, Any] = {"order": order_view}
    for name in VIEWS[1:]:
        if name in system.children:
            views[name] = await system.get_json(name, "/invariants")
    return views
