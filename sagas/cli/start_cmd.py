"""`sagas start`: a checked start of one saga.

A start is checked by whoever knows the loaded definitions and the existing sagas:
by default the coordinator's HTTP API (``--api`` or ``SAGAS_API_URL``, like the
other operator commands), which refuses an unknown saga name (404) and an id that
already names a saga with other data (409) and answers an identical repeat with the
existing saga. With ``--definitions`` the request goes straight to Kafka instead
(``saga.starts``, no API needed), after checking the name against those files; an
existing id is then not detected (the coordinator drops the duplicate start), and a
start sent while the coordinator is at its bound on sagas in flight waits there.

Exit codes as for the operator commands: 0 started (or already there with the same
data), 1 refused, 2 usage or connection problem, or a try-again answer (503 not ready,
429 when the coordinator is at its bound on sagas in flight: nothing was started).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import typer

from sagas.cli import app
from sagas.cli.ops_cmd import API, TOKEN, WAIT, ApiCallError, call


def _through_kafka(
    definitions: list[Path], name: str, payload: dict[str, Any], saga_id: str | None
) -> str:
    from sagas.cli.foreground import (
        CONNECT_TIMEOUT,
        fail,
        kafka_failure,
        quiet_kafka_client_logs,
    )
    from sagas.client import SagaClient
    from sagas.errors import SagaError
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.loader import DefinitionRegistry, load_definitions

    try:
        registry = DefinitionRegistry(d for path in definitions for d in load_definitions(path))
    except SagaError as exc:
        fail(str(exc))
    if name not in {d.name for d in registry}:
        known = ", ".join(sorted({d.name for d in registry})) or "none"
        typer.echo(
            f"error: no saga definition {name!r} in --definitions; loaded: {known}", err=True
        )
        raise typer.Exit(1)
    if not KafkaSettings().bootstrap_servers:
        fail("KAFKA_BOOTSTRAP_SERVERS is not set; point it at the cluster the coordinator uses")

    quiet_kafka_client_logs()

    async def run() -> str:
        async with SagaClient(KafkaSettings(), connect_timeout=CONNECT_TIMEOUT) as client:
            return await client.start_saga(name, payload, saga_id=saga_id)

    try:
        return asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - shown to a person, then exit
        if (reason := kafka_failure(exc)) is None:
            raise
        fail(reason)


def _through_api(
    api: str,
    token: str | None,
    wait: float,
    name: str,
    payload: dict[str, Any],
    saga_id: str | None,
) -> str:
    import urllib.parse

    try:
        answer = call(
            api,
            "POST",
            f"/sagas/{urllib.parse.quote(name, safe='')}",
            token=token,
            body=payload,
            query={"id": saga_id, "wait": wait or None},
            timeout=wait + 30,
        )
    except ApiCallError as exc:
        typer.echo(f"error: start {name!r}: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1 if exc.status < 500 and exc.status != 429 else 2) from None
    return str(answer["id"])


@app.command()
def start(
    name: str = typer.Argument(..., help="Saga definition name."),
    data: str = typer.Option("{}", "--data", help="Initial context as a JSON object."),
    saga_id: str | None = typer.Option(None, "--id", help="Saga id (default: a new UUID)."),
    definitions: list[Path] = typer.Option(
        [],
        "--definitions",
        "-d",
        help="Start through Kafka, checking NAME against these definition files or "
        "folders (repeatable), instead of through the coordinator's API.",
    ),
    api: str = API,
    token: str | None = TOKEN,
    wait: float = WAIT,
) -> None:
    """Start a saga; prints its id. Refused (exit 1) for an unknown saga or a taken id."""
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
    if definitions:
        typer.echo(_through_kafka(definitions, name, payload, saga_id))
    else:
        typer.echo(_through_api(api, token, wait, name, payload, saga_id))
