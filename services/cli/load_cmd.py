"""`sagas load`: place orders continuously, for dashboards with something to show.

The orders are the demo's (`services.demo.scenario`): a catalogue, customers,
and the same share of orders that fail on purpose (out of stock, over the
credit limit, refused by the carrier), so compensations show up too. Placed
open loop at ``--rate`` orders per second on the order saga's trigger topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import time

import typer

CHUNK = 1000


def load(
    rate: float = typer.Option(5.0, min=0.01, help="Orders placed per second."),
    count: int = typer.Option(0, min=0, help="Orders to place; 0 places them until stopped."),
    seed: int | None = typer.Option(None, help="Seed of the orders (default: a random one)."),
    topic: str = typer.Option(
        "orders", help="Topic of order.placed (prefixed with SERVICES_TOPIC_PREFIX)."
    ),
) -> None:
    """Place demo orders (order.placed) at a steady rate until stopped or --count is reached."""
    from sagas.cli.foreground import fail, kafka_failure, quiet_kafka_client_logs
    from sagas.kafka.kafka_settings import KafkaSettings
    from services.config import ServicesConfig

    quiet_kafka_client_logs()

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        typer.echo("error: KAFKA_BOOTSTRAP_SERVERS is not set", err=True)
        raise typer.Exit(2)
    full_topic = ServicesConfig.load(None).topic_prefix + topic
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    typer.echo(f"placing orders on {full_topic} at {rate:g}/s (seed {seed}); Ctrl-C stops")
    try:
        placed = asyncio.run(_place(kafka, full_topic, rate, count, seed))
    except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
        if (reason := kafka_failure(exc)) is None:
            raise
        fail(reason)
    typer.echo(f"placed {placed} orders")


async def _place(kafka: object, topic: str, rate: float, count: int, seed: int) -> int:
    from aiokafka import AIOKafkaProducer

    from events.codec import encode
    from events.envelope import derived_id, new_event
    from sagas.cli.foreground import CONNECT_TIMEOUT
    from sagas.kafka.broker_watch import start_client
    from services.demo.scenario import Scenario

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), linger_ms=5)  # type: ignore[attr-defined]
    await start_client(producer, CONNECT_TIMEOUT)
    placed, chunk, start, reported = 0, 0, time.monotonic(), time.monotonic()
    try:
        while not stop.is_set() and (count == 0 or placed < count):
            orders = Scenario(orders=CHUNK, seed=seed + chunk).make_orders()
            chunk += 1
            for template in orders:
                if stop.is_set() or (count and placed >= count):
                    break
                # Unique across chunks and runs: the order service keys orders by order_id.
                order = dataclasses.replace(
                    template,
                    saga_id=derived_id("sagas-load", seed, placed),
                    order_id=f"ord-{seed}-{placed + 1:07d}",
                )
                due = start + placed / rate
                if (delay := due - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                event = new_event(
                    "order.placed", source="sagastream/load", sagaid=order.saga_id,
                    data=order.event_data(),
                )  # fmt: skip
                value, headers = encode(event)
                await producer.send(topic, value, key=order.saga_id.encode(), headers=headers)
                placed += 1
                if time.monotonic() - reported >= 10:
                    reported = time.monotonic()
                    print(f"placed {placed} orders", flush=True)
        await producer.flush()
    finally:
        await producer.stop()
    return placed
