"""`sagas bridge --config FILE`: HTTP services as saga participants (see `sagas.bridge`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import NoReturn

import typer

from sagas.cli import app


@app.command()
def bridge(
    config: Path = typer.Option(
        ..., "--config", "-c", help="YAML file: routes from command types to HTTP endpoints."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics, /health and /stats on this port."
    ),
    metrics_host: str = typer.Option("127.0.0.1", help="Address for the metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
) -> None:
    """Forward commands to HTTP endpoints and publish their answers as replies.

    POSTs the command data with Idempotency-Key: <command id>; 2xx -> success
    type (response JSON as data), 4xx -> failure type, 5xx/timeouts retried.
    """
    from events.kafka_settings import KafkaSettings
    from sagas.bridge import BridgeConfig, HttpBridge
    from sagas.bridge.config import BridgeConfigError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        _fail(
            "KAFKA_BOOTSTRAP_SERVERS is not set; start a broker (`sagas broker`) and point "
            "KAFKA_BOOTSTRAP_SERVERS at it"
        )
    try:
        settings = BridgeConfig.load(config)
    except BridgeConfigError as exc:
        _fail(str(exc))
    runner = HttpBridge(
        settings,
        kafka,
        http_port=metrics_port,
        http_host=metrics_host,
        create_topics=create_topics,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.serve(stop)

    log = logging.getLogger("sagas.bridge")
    for route in settings.routes:
        log.info("route %s on %s -> POST %s -> %s", route.command, route.topic, route.url,
                 route.reply_topic)  # fmt: skip
    try:
        asyncio.run(main())
    except Exception as exc:  # shown to a person: what stopped it, not a traceback
        if isinstance(exc, OSError) or exc.__class__.__module__.startswith(("events", "aiokafka")):
            _fail(f"bridge {settings.name} stopped: {exc!r}")
        raise
    log.info("bridge %s stopped", settings.name)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
