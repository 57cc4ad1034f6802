"""`sagas topics init`: create a deployment's topics once, before its processes start.

The one-shot job of docker-compose runs it so that the coordinator replicas
and the services do not race to create the same topics, and so that every
topic the coordinator reads has the same partition count (wire contract v1).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from sagas.cli import app

if TYPE_CHECKING:
    from sagas.kafka.kafka_settings import KafkaSettings

topics_app = typer.Typer(help="Create and check the topics of a deployment.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@topics_app.command("init")
def init(
    definitions: list[Path] = typer.Option(
        ...,
        "--definitions",
        "-d",
        help="YAML/JSON file of saga definitions, or a folder of them (repeatable).",
    ),
    wait: float = typer.Option(
        60.0, help="Seconds to keep trying while the cluster does not answer yet."
    ),
) -> None:
    """Create the topics the saga definitions and the engine use (missing ones only), with
    SAGAS_PARTITIONS partitions and SAGAS_REPLICATION_FACTOR replicas, then check that the
    coordinator's inputs are co-partitioned."""
    from events.topics import Topics
    from sagas.cli.foreground import kafka_client_logs_held_back, kafka_failure
    from sagas.errors import SagaError
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.loader import DefinitionRegistry, load_definitions
    from sagas.topic_setup import coordinator_topics

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        _fail("KAFKA_BOOTSTRAP_SERVERS is not set")
    try:
        registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
    except (SagaError, OSError) as exc:
        _fail(str(exc))
    reads, writes = coordinator_topics(registry, Topics.from_settings(kafka))
    with kafka_client_logs_held_back():  # each failed attempt is said in one line below
        try:
            counts = asyncio.run(_create(kafka, [*reads, *writes], reads, wait))
        except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
            _fail(kafka_failure(exc) or f"{type(exc).__name__}: {exc}")
    width = max(len(name) for name in counts)
    for name in sorted(counts):
        role = "read by the coordinator" if name in reads else "written"
        typer.echo(f"{name:<{width}}  {counts[name]:>3} partitions  ({role})")


async def _create(
    kafka: KafkaSettings, names: list[str], reads: list[str], wait: float
) -> dict[str, int]:
    from aiokafka.errors import KafkaConnectionError

    from sagas.kafka.admin import check_copartitioned, ensure_topics
    from sagas.kafka.connection_failure import explain_connection_failure

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            counts = await ensure_topics(kafka, names)
            break
        except KafkaConnectionError as exc:
            failure = await asyncio.to_thread(explain_connection_failure, exc, kafka)
            if loop.time() >= deadline or not failure.retriable:
                raise
            typer.echo(f"waiting for Kafka: {failure}", err=True)
            await asyncio.sleep(2)
    await check_copartitioned(kafka, reads)
    return counts


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
