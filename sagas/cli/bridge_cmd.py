"""`sagas bridge --config FILE`: HTTP services as saga participants (see `sagas.participants.bridge`)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from sagas.cli import app
from sagas.cli.foreground import configure_logging, fail, kafka_from_environment, serve_until_signal


@app.command()
def bridge(
    config: Path = typer.Option(
        ..., "--config", "-c", help="YAML file: routes from command types to HTTP endpoints."
    ),
    metrics_port: int | None = typer.Option(
        None,
        help="Serve /metrics, /health and /stats on this port (default: SERVICES_METRICS_PORT).",
    ),
    metrics_host: str = typer.Option("127.0.0.1", help="Address for the metrics port."),
    create_topics: bool = typer.Option(True, help="Create missing topics before starting."),
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
) -> None:
    """Forward commands to HTTP endpoints and publish their answers as replies.

    POSTs the command data with Idempotency-Key: <command id>; 2xx -> success
    type (response JSON as data), 4xx -> failure type, 5xx/timeouts retried.
    """
    from sagas.participants.bridge import BridgeConfig, HttpBridge
    from sagas.participants.bridge.config import BridgeConfigError

    configure_logging(log_level)
    kafka = kafka_from_environment()
    try:
        settings = BridgeConfig.load(config)
    except BridgeConfigError as exc:
        fail(str(exc))
    if metrics_port is None:  # the flag wins; else the services' variable, as in a service
        from sagas.participants.bridge.config import BridgeProcessSettings

        metrics_port = BridgeProcessSettings().metrics_port
    runner = HttpBridge(
        settings,
        kafka,
        http_port=metrics_port,
        http_host=metrics_host,
        create_topics=create_topics,
    )
    log = logging.getLogger("sagas.participants.bridge")
    for route in settings.routes:
        log.info("route %s on %s -> POST %s -> %s", route.command, route.topic, route.url,
                 route.reply_topic)  # fmt: skip
    serve_until_signal(runner, f"bridge {settings.name}")
    log.info("bridge %s stopped", settings.name)
