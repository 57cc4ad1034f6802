"""`sagas start`, `abort`, `retry`, `skip`, `resolve`: requests to the coordinator via Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import typer

from sagas.cli import app


def _with_client(action: Callable[[Any], Awaitable[Any]]) -> Any:
    from events.kafka_settings import KafkaSettings
    from sagas.cli.foreground import fail, kafka_failure
    from sagas.client import SagaClient

    async def run() -> Any:
        async with SagaClient(KafkaSettings()) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
        if (reason := kafka_failure(exc)) is None:
            raise
        fail(reason)


@app.command()
def start(
    name: str = typer.Argument(..., help="Saga definition name."),
    data: str = typer.Option("{}", "--data", help="Initial context as a JSON object."),
    saga_id: str | None = typer.Option(None, "--id", help="Saga id (default: a new UUID)."),
) -> None:
    """Start a saga; prints its id."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        typer.echo(f"error: --data is not JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(payload, dict):
        typer.echo(f"error: --data must be a JSON object, got {type(payload).__name__}", err=True)
        raise typer.Exit(2)
    if saga_id is not None:
        from events.saga_ids import saga_id_problem

        problem = saga_id_problem(saga_id)
        if problem is not None:
            typer.echo(f"error: --id: {problem}", err=True)
            raise typer.Exit(2)
    typer.echo(_with_client(lambda c: c.start_saga(name, payload, saga_id=saga_id)))
