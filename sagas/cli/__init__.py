"""The `sagas` command line: one module per command group, registered here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="sagas",
    help="sagastream: event-driven sagas on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


#: The command modules: each adds its commands to `app` (and imports it, so they are
#: named here rather than imported, which would make an import circle).
COMMANDS = (
    "bench_cmd",
    "bridge_cmd",
    "broker_cmd",
    "demo_cmd",
    "load_cmd",
    "ops_cmd",
    "schema_cmd",
    "service_cmd",
    "start_cmd",
    "topics_cmd",
    "worker_cmd",
)


def _register() -> None:
    # Imported here so that `sagas --help` lists them all. Keep heavy imports inside the
    # commands.
    for name in COMMANDS:
        importlib.import_module(f"sagas.cli.{name}")


def main() -> None:
    """``sagas``: a mistake in a setting or a flag ends in one line and exit code 2."""
    from sagas.cli.exits import main as run_main

    _register()
    run_main(app)
